/* Request planning: merge a sensor's points into the fewest Modbus reads. */
#include "drivers/modbus/plan.h"

#include <stdlib.h>

#include "base/error.h"
#include "drivers/modbus/decode.h"

/* The units a point occupies in its table: registers for register tables,
 * one bit for coils and discrete inputs (and at least one in any case, so
 * that a mistyped point still gets read rather than vanish). */
static unsigned point_width(const cg_point_t *p)
{
	size_t regs;

	if (p->table == CG_TABLE_COIL || p->table == CG_TABLE_DISCRETE)
		return 1;
	regs = cg_type_registers(p->type);
	return regs ? (unsigned)regs : 1;
}

static unsigned table_limit(cg_table_t t)
{
	return t == CG_TABLE_COIL || t == CG_TABLE_DISCRETE ? CG_MAX_READ_BITS
	                                                    : CG_MAX_READ_REGISTERS;
}

/* Orders point indices by table, then address, then width (widest last, so
 * that the running end of a request only grows). qsort_r is a GNU extension;
 * the points travel with the indices instead. */
typedef struct sort_entry {
	size_t index;
	cg_table_t table;
	unsigned address;
	unsigned width;
} sort_entry_t;

static int compare_entries(const void *a, const void *b)
{
	const sort_entry_t *x = a, *y = b;

	if (x->table != y->table)
		return x->table < y->table ? -1 : 1;
	if (x->address != y->address)
		return x->address < y->address ? -1 : 1;
	if (x->width != y->width)
		return x->width < y->width ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Plans the reads; see plan.h. Points are sorted and swept once: a point
 * joins the open request when it is in the same table, the hole between the
 * request's end and the point's start is at most max_gap, and the request
 * with it stays within the table's limit; otherwise it opens a new request.
 * Points that overlap or share registers join with no hole. Returns 0,
 * CG_EINVAL for a point whose value runs past address 65535 or a bad table,
 * or CG_ENOMEM; on error *out is left empty.
 */
int cg_plan_build(const cg_point_t *points, size_t n, bool merge, unsigned max_gap, cg_plan_t *out)
{
	sort_entry_t *order;
	unsigned end = 0;
	int rc = CG_ENOMEM;

	*out = (cg_plan_t){0};
	if (n == 0)
		return 0;
	order = calloc(n, sizeof(*order));
	out->requests = calloc(n, sizeof(*out->requests));
	out->point_request = calloc(n, sizeof(*out->point_request));
	if (!order || !out->requests || !out->point_request)
		goto free_order;
	for (size_t i = 0; i < n; i++) {
		if (points[i].table > CG_TABLE_INPUT ||
		    (unsigned long)points[i].address + point_width(&points[i]) > 65536) {
			rc = CG_EINVAL;
			goto free_order;
		}
		order[i] = (sort_entry_t){.index = i,
		                          .table = points[i].table,
		                          .address = points[i].address,
		                          .width = point_width(&points[i])};
	}
	qsort(order, n, sizeof(*order), compare_entries);

	for (size_t k = 0; k < n; k++) {
		const sort_entry_t *e = &order[k];
		cg_request_t *cur = out->n_requests ? &out->requests[out->n_requests - 1] : NULL;
		unsigned e_end = e->address + e->width;

		if (merge && cur && cur->table == e->table &&
		    (e->address <= end || e->address - end <= max_gap) &&
		    (e_end > end ? e_end : end) - cur->address <= table_limit(e->table)) {
			if (e_end > end)
				end = e_end;
			cur->count = (uint16_t)(end - cur->address);
		} else {
			cur = &out->requests[out->n_requests++];
			*cur = (cg_request_t){.table = e->table,
			                      .address = (uint16_t)e->address,
			                      .count = (uint16_t)e->width};
			end = e_end;
		}
		out->point_request[e->index] = out->n_requests - 1;
	}
	free(order);
	return 0;

free_order:
	free(order);
	cg_plan_free(out);
	return rc;
}

void cg_plan_free(cg_plan_t *plan)
{
	if (!plan)
		return;
	free(plan->requests);
	free(plan->point_request);
	*plan = (cg_plan_t){0};
}

/* An RTU read request is address, function, start (2), count (2) and CRC (2):
 * 8 bytes for FC 01 to 04. Its response is address, function, byte count,
 * the data and CRC: 5 bytes plus the data. */
size_t cg_request_rtu_bytes(const cg_request_t *r, size_t *response_bytes)
{
	size_t data = r->table == CG_TABLE_COIL || r->table == CG_TABLE_DISCRETE
	                  ? ((size_t)r->count + 7) / 8
	                  : (size_t)r->count * 2;

	if (response_bytes)
		*response_bytes = 5 + data;
	return 8;
}
