/* libFuzzer target: register decoding for every type and word order, and request planning. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/error.h"
#include "drivers/modbus/decode.h"
#include "drivers/modbus/plan.h"
#include "drivers/modbus/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_POINTS 64

static const cg_type_t types[] = {CG_TYPE_U16, CG_TYPE_I16, CG_TYPE_U32, CG_TYPE_I32,
                                  CG_TYPE_U64, CG_TYPE_I64, CG_TYPE_F32, CG_TYPE_F64};
static const cg_order_t orders[] = {CG_ORDER_ABCD, CG_ORDER_CDAB, CG_ORDER_BADC, CG_ORDER_DCBA};

/*
 * The first 8 bytes are four registers (big endian, as on the wire). Each is
 * decoded as every type in every order; the 16- and 32-bit types and f32
 * (except NaN, whose payload a double need not keep) must encode back to the
 * same registers, since decode and encode are each other's inverse there.
 * A bool has no register decoding and must be refused.
 */
static void decode_all(const uint8_t *data, size_t size)
{
	uint16_t regs[4] = {0}, back[4];
	double raw;

	for (size_t i = 0; i < 4 && 2 * i + 1 < size; i++)
		regs[i] = (uint16_t)(data[2 * i] << 8 | data[2 * i + 1]);
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		for (size_t o = 0; o < sizeof(orders) / sizeof(orders[0]); o++) {
			size_t n = cg_type_registers(types[t]);
			bool exact = n <= 2;

			uint64_t bits;

			if (cg_decode_registers(regs, types[t], orders[o], &raw) != 0)
				__builtin_trap();
			/* The exact integer agrees with the double to the double's precision. */
			if (cg_type_is_integer(types[t]) &&
			    (cg_decode_integer(regs, types[t], orders[o], &bits) != 0 ||
			     raw != (cg_type_is_signed(types[t]) ? (double)(int64_t)bits : (double)bits)))
				__builtin_trap();
			if (types[t] == CG_TYPE_F32 && isnan(raw))
				exact = false;
			if (!exact)
				continue;
			memset(back, 0, sizeof(back));
			if (cg_encode_registers(raw, types[t], orders[o], back) != 0 ||
			    memcmp(back, regs, n * sizeof(regs[0])) != 0)
				__builtin_trap();
		}
	}
	if (cg_decode_registers(regs, CG_TYPE_BOOL, CG_ORDER_ABCD, &raw) != CG_EINVAL)
		__builtin_trap();
}

/*
 * After the registers, every 4 bytes make a point: table (2 bits), type
 * (mod 9), then a 16-bit address; the byte before the points picks merging
 * and the largest hole. A plan must put every point inside a request of its
 * own table that stays within the protocol's limits, order its requests by
 * table then address, and give one request per point when not merging.
 * Points running past address 65535 must be refused.
 */
static void plan_points(const uint8_t *data, size_t size)
{
	cg_point_t points[MAX_POINTS];
	cg_plan_t plan;
	size_t n = 0;
	bool merge, too_far = false;
	unsigned max_gap;
	int rc;

	if (size < 9)
		return;
	merge = data[8] & 1;
	max_gap = data[8] >> 1;
	for (size_t at = 9; at + 4 <= size && n < MAX_POINTS; at += 4, n++) {
		cg_point_t *p = &points[n];
		unsigned width;

		memset(p, 0, sizeof(*p));
		p->table = (cg_table_t)(data[at] & 3);
		p->type = (cg_type_t)(data[at + 1] % 9);
		p->address = (uint16_t)(data[at + 2] << 8 | data[at + 3]);
		p->scale = 1;
		width = p->table == CG_TABLE_COIL || p->table == CG_TABLE_DISCRETE
		            ? 1
		            : (cg_type_registers(p->type) ? (unsigned)cg_type_registers(p->type) : 1);
		if ((unsigned long)p->address + width > 65536)
			too_far = true;
	}
	rc = cg_plan_build(points, n, merge, max_gap, &plan);
	if (too_far) {
		if (rc != CG_EINVAL || plan.requests || plan.n_requests)
			__builtin_trap();
		return;
	}
	if (rc != 0)
		__builtin_trap();
	if (!merge && plan.n_requests != n)
		__builtin_trap();
	for (size_t i = 0; i < plan.n_requests; i++) {
		const cg_request_t *r = &plan.requests[i];
		unsigned limit = r->table == CG_TABLE_COIL || r->table == CG_TABLE_DISCRETE
		                     ? CG_MAX_READ_BITS
		                     : CG_MAX_READ_REGISTERS;

		if (r->count == 0 || r->count > limit || (unsigned long)r->address + r->count > 65536)
			__builtin_trap();
		if (i > 0 && (plan.requests[i - 1].table > r->table ||
		              (plan.requests[i - 1].table == r->table &&
		               plan.requests[i - 1].address > r->address)))
			__builtin_trap();
	}
	for (size_t i = 0; i < n; i++) {
		const cg_point_t *p = &points[i];
		const cg_request_t *r;
		unsigned width = p->table == CG_TABLE_COIL || p->table == CG_TABLE_DISCRETE
		                     ? 1
		                     : (cg_type_registers(p->type) ? (unsigned)cg_type_registers(p->type)
		                                                   : 1);

		if (plan.point_request[i] >= plan.n_requests)
			__builtin_trap();
		r = &plan.requests[plan.point_request[i]];
		if (r->table != p->table || p->address < r->address ||
		    (unsigned long)p->address + width > (unsigned long)r->address + r->count)
			__builtin_trap();
	}
	cg_plan_free(&plan);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	decode_all(data, size);
	plan_points(data, size);
	return 0;
}
