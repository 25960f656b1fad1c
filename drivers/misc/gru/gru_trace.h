/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tracepoints of the GRU TLB driver: a miss, a drop-in, an invalidation.
 * Enable with: echo 1 > /sys/kernel/tracing/events/gru_tlb/enable
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM gru_tlb

#if !defined(_GRU_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _GRU_TRACE_H

#include <linux/tracepoint.h>

TRACE_EVENT(gru_fault,
	    TP_PROTO(int slot, unsigned int ctx, u64 va, u64 info),
	    TP_ARGS(slot, ctx, va, info),
	    TP_STRUCT__entry(__field(int, slot)
			     __field(unsigned int, ctx)
			     __field(u64, va)
			     __field(u64, info)),
	    TP_fast_assign(__entry->slot = slot;
			   __entry->ctx = ctx;
			   __entry->va = va;
			   __entry->info = info;),
	    TP_printk("slot=%d ctx=%u va=%#llx info=%#llx",
		      __entry->slot, __entry->ctx, __entry->va, __entry->info)
);

TRACE_EVENT(gru_dropin,
	    TP_PROTO(u16 asid, u64 va, u64 pa, u64 attr, u64 gen,
		     u64 result, int path),
	    TP_ARGS(asid, va, pa, attr, gen, result, path),
	    TP_STRUCT__entry(__field(u16, asid)
			     __field(u64, va)
			     __field(u64, pa)
			     __field(u64, attr)
			     __field(u64, gen)
			     __field(u64, result)
			     __field(int, path)),
	    TP_fast_assign(__entry->asid = asid;
			   __entry->va = va;
			   __entry->pa = pa;
			   __entry->attr = attr;
			   __entry->gen = gen;
			   __entry->result = result;
			   __entry->path = path;),
	    TP_printk("asid=%u va=%#llx pa=%#llx attr=%#llx gen=%llu result=%llu path=%d",
		      __entry->asid, __entry->va, __entry->pa, __entry->attr,
		      __entry->gen, __entry->result, __entry->path)
);

TRACE_EVENT(gru_invalidate,
	    TP_PROTO(u16 asid, u64 start, u64 end, u32 kind),
	    TP_ARGS(asid, start, end, kind),
	    TP_STRUCT__entry(__field(u16, asid)
			     __field(u64, start)
			     __field(u64, end)
			     __field(u32, kind)),
	    TP_fast_assign(__entry->asid = asid;
			   __entry->start = start;
			   __entry->end = end;
			   __entry->kind = kind;),
	    TP_printk("asid=%u start=%#llx end=%#llx kind=%u",
		      __entry->asid, __entry->start, __entry->end, __entry->kind)
);

#endif /* _GRU_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE gru_trace
#include <trace/define_trace.h>
