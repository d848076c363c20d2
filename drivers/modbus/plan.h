/* Request planning: merge a sensor's points into the fewest Modbus reads. */
#ifndef CG_PLAN_H
#define CG_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/modbus/profile.h"

#define CG_MAX_READ_REGISTERS 125
#define CG_MAX_READ_BITS 2000

typedef struct cg_request {
	cg_table_t table;
	uint16_t address;
	uint16_t count;    /* registers or bits */
} cg_request_t;

typedef struct cg_plan {
	cg_request_t *requests;
	size_t n_requests;
	size_t *point_request; /* for each point, the index of the request holding it */
} cg_plan_t;

/* Plans the reads for n points. Points of one table are merged when the hole
 * between them is at most max_gap registers (or bits) and the request stays
 * within the 125-register / 2000-bit limits; merge=false gives one request
 * per point. Requests are ordered by table, then address. */
int cg_plan_build(const cg_point_t *points, size_t n, bool merge, unsigned max_gap,
		  cg_plan_t *out);

/* Frees the plan's arrays; accepts NULL. */
void cg_plan_free(cg_plan_t *plan);

/* Bytes on the wire of one request and its normal response over RTU
 * (address, function, data, CRC), for benchmarks. */
size_t cg_request_rtu_bytes(const cg_request_t *r, size_t *response_bytes);

#endif
