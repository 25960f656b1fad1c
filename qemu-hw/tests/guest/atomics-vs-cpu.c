// SPDX-License-Identifier: GPL-2.0
/*
 * Guest check that the device's FADD and CAS are atomic against vCPUs under
 * MTTCG: three threads hammer one word with lock-prefixed adds while the
 * device increments the same word with FADD and with a CAS loop.  No update
 * may be lost.  Prints KTAP.
 *
 * Not part of make check (the kselftest directory
 * tools/testing/selftests/drivers/misc/gru_tlb owns the guest suite).  Run
 * it by hand, from the repo root, after `make -C tools/lib/gru OUTPUT=/tmp/lg/`:
 *
 *   gcc -O2 -static -D_GNU_SOURCE -Iinclude/uapi -Itools/lib/gru/include/gru \
 *       -o /tmp/atomics qemu-hw/tests/guest/atomics-vs-cpu.c \
 *       /tmp/lg/libgru.a -lpthread
 *   { echo 'base64 -d >/tmp/a <<"E"'; base64 /tmp/atomics; echo E;
 *     echo 'chmod +x /tmp/a && /tmp/a'; } >/tmp/atomics.sh
 *   scripts/guest-run.sh --smp 4 --script /tmp/atomics.sh
 *
 * A device that did a plain read-modify-write with a 200 us gap lost
 * millions of the CPUs' increments here.  A gap of tens of ns was not
 * caught in 4000 rounds on a loaded 2-core host.
 */
#include <pthread.h>
#include <stdio.h>
#include "libgru.h"

#define DEV_ITERS	4000
#define NTHREADS	3

static volatile uint64_t word __attribute__((aligned(4096)));
static volatile int go, stop;
static uint64_t done_by[NTHREADS];

static void *cpu_thread(void *arg)
{
	uint64_t n = 0;

	while (!go)
		;
	while (!stop) {
		__atomic_fetch_add(&word, 1, __ATOMIC_SEQ_CST);
		n++;
	}
	done_by[(long)arg] = n;
	return NULL;
}

int main(void)
{
	uint64_t res, cpu = 0, want;
	pthread_t t[NTHREADS];
	struct gru_ctx ctx;
	int i, r;

	printf("KTAP version 1\n1..1\n");
	r = gru_open(&ctx, 0);
	if (r) {
		printf("not ok 1 device-atomics-vs-cpu # gru_open: %d\n", r);
		return 1;
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, cpu_thread, (void *)(long)i);
	go = 1;
	for (i = 0; i < DEV_ITERS; i++) {
		struct gru_insn fadd = {
			.opcode = GRU_OPC_FADD, .addr = (uint64_t)&word, .op0 = 1,
		};

		r = gru_run(&ctx, &fadd, &res);
		for (;;) {
			uint64_t old = word;
			struct gru_insn cas = {
				.opcode = GRU_OPC_CAS, .addr = (uint64_t)&word,
				.op0 = old + 1, .op1 = old,
			};

			if (r)
				break;
			r = gru_run(&ctx, &cas, &res);
			if (!r && res == old)
				break;
		}
		if (r) {
			stop = 1;
			printf("not ok 1 device-atomics-vs-cpu # gru_run: %d\n", r);
			return 1;
		}
	}
	stop = 1;
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		cpu += done_by[i];
	}
	want = cpu + 2ULL * DEV_ITERS;
	printf("# final %llu, want %llu (CPU adds %llu, device FADD %d, CAS %d)\n",
	       (unsigned long long)word, (unsigned long long)want,
	       (unsigned long long)cpu, DEV_ITERS, DEV_ITERS);
	printf("%s 1 device-atomics-vs-cpu\n", word == want ? "ok" : "not ok");
	gru_close(&ctx);
	return word != want;
}
