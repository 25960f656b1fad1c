// SPDX-License-Identifier: GPL-2.0
/*
 * gru-demo: issue every opcode once on this process's own memory, print
 * what happened and the per-context counters.  Used by `make run`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <gru/libgru.h>

static int failures;

static void report(const char *what, int ret, int ok)
{
	printf("  %-44s %s\n", what, ret ? strerror(-ret) : ok ? "ok" : "WRONG DATA");
	if (ret || !ok)
		failures++;
}

int main(void)
{
	struct gru_ctx ctx;
	struct gru_info info;
	struct gru_ctx_stats st;
	uint64_t *w, v = 0;
	char *b;
	int ret;

	ret = gru_open(&ctx, GRU_LIB_AUTO_CALLOS);
	if (ret) {
		fprintf(stderr, "gru-demo: cannot open %s: %s (is gru_tlb loaded?)\n",
			GRU_DEV_PATH, strerror(-ret));
		return 1;
	}
	b = mmap(NULL, 8 * 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED) {
		perror("gru-demo: mmap");
		return 1;
	}
	w = (uint64_t *)b;
	gru_info(&ctx, &info);
	printf("gru-demo: device version %#x, %u contexts, TLB %u sets x %u ways, %u vectors\n",
	       info.version, info.hw_contexts, info.tlb_sets, info.tlb_ways,
	       info.vectors);

	ret = gru_nop(&ctx);
	report("NOP", ret, 1);
	ret = gru_store(&ctx, &w[0], 0x1122334455667788ULL);
	report("STORE 0x1122334455667788 to untouched page", ret,
	       w[0] == 0x1122334455667788ULL);
	w[1] = 0xfeedULL;
	ret = gru_load(&ctx, &w[1], &v);
	report("LOAD 0xfeed written by the CPU", ret, v == 0xfeed);
	ret = gru_bset(&ctx, b + 4096, 0x5a, 4096);
	report("BSET 4 KiB with 0x5a", ret, b[4096] == 0x5a && b[8191] == 0x5a);
	ret = gru_bcopy(&ctx, b + 3 * 4096, b + 4096, 4096);
	report("BCOPY 4 KiB", ret, !memcmp(b + 3 * 4096, b + 4096, 4096));
	w[2] = 40;
	ret = gru_fadd(&ctx, &w[2], 2, &v);
	report("FADD 40 + 2", ret, v == 40 && w[2] == 42);
	ret = gru_swap(&ctx, &w[2], 7, &v);
	report("SWAP 42 <-> 7", ret, v == 42 && w[2] == 7);
	ret = gru_cas(&ctx, &w[2], 7, 9, &v);
	report("CAS 7 -> 9", ret, v == 7 && w[2] == 9);
	ret = gru_cas(&ctx, &w[2], 7, 1, &v);
	report("CAS 7 -> 1 (must not swap, value is 9)", ret, v == 9 && w[2] == 9);

	if (!gru_stats(&ctx, &st))
		printf("gru-demo: counters: faults %llu, fills: irq %llu, worker %llu, call-os %llu; retries %llu, invalidations %llu, loads %llu, steals %llu\n",
		       (unsigned long long)st.faults,
		       (unsigned long long)st.fill_irq,
		       (unsigned long long)st.fill_worker,
		       (unsigned long long)st.fill_callos,
		       (unsigned long long)st.retries,
		       (unsigned long long)st.invalidations,
		       (unsigned long long)st.loads,
		       (unsigned long long)st.steals);
	gru_close(&ctx);
	printf("gru-demo: %s\n", failures ? "FAILED" : "all opcodes ok");
	return failures ? 1 : 0;
}
