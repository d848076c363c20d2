/* Bus efficiency: requests and RTU bytes per poll of each profile's plan, against the minimum. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/diag.h"
#include "base/error.h"
#include "base/log.h"
#include "bench_common.h"
#include "drivers/modbus/decode.h"
#include "drivers/modbus/plan.h"
#include "drivers/modbus/profile.h"

/* The generic driver's defaults (drivers/modbus/modbus_driver.c). */
#define DRIVER_MERGE_GAP 8
/* RTU framing: a read request is 8 bytes, an answer 5 plus its data; 3.5
 * silent characters before and after each frame; 11 bits a character. */
#define RTU_REQUEST     8
#define RTU_ANSWER_BASE 5
#define RTU_GAP_CHARS   7
#define BITS_PER_CHAR   11.0

typedef struct span {
	int table;
	unsigned start, end; /* units (registers or bits) [start, end) */
} span_t;

static bool bit_table(int t)
{
	return t == CG_TABLE_COIL || t == CG_TABLE_DISCRETE;
}

static unsigned data_bytes(int table, unsigned units)
{
	return bit_table(table) ? (units + 7) / 8 : units * 2;
}

static int cmp_span(const void *a, const void *b)
{
	const span_t *x = a, *y = b;

	if (x->table != y->table)
		return x->table - y->table;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

/*
 * The least bytes (gaps false) or characters of bus time (gaps true) any
 * master can spend to read these points in one poll: points sorted by table
 * and address, split into consecutive groups, each group one read request of
 * at most 125 registers or 2000 bits, a group costing its request, its
 * answer with every register of its span, and with gaps the two silences.
 * Dynamic programming over the split points; *requests is the number of
 * requests of the best split.
 */
static unsigned min_cost(span_t *sp, size_t n, bool gaps, size_t *requests)
{
	unsigned *best = calloc(n + 1, sizeof(*best));
	size_t *count = calloc(n + 1, sizeof(*count));
	unsigned result;

	if (!best || !count) {
		free(best);
		free(count);
		*requests = 0;
		return 0;
	}
	qsort(sp, n, sizeof(*sp), cmp_span);
	for (size_t j = 1; j <= n; j++) {
		unsigned end = 0;

		best[j] = UINT_MAX;
		/* The last group is sp[i..j-1]. */
		for (size_t i = j; i-- > 0;) {
			unsigned limit =
			    bit_table(sp[i].table) ? CG_MAX_READ_BITS : CG_MAX_READ_REGISTERS;
			unsigned cost;

			if (sp[i].table != sp[j - 1].table)
				break;
			if (sp[i].end > end)
				end = sp[i].end;
			if (end - sp[i].start > limit)
				break;
			cost = RTU_REQUEST + RTU_ANSWER_BASE +
			       data_bytes(sp[i].table, end - sp[i].start) +
			       (gaps ? RTU_GAP_CHARS : 0);
			if (best[i] != UINT_MAX && best[i] + cost < best[j]) {
				best[j] = best[i] + cost;
				count[j] = count[i] + 1;
			}
		}
	}
	result = best[n];
	*requests = count[n];
	free(best);
	free(count);
	return result;
}

/* Requests, bytes on the wire (request and answer) and bus characters of a plan. */
static void plan_cost(const cg_plan_t *plan, unsigned *bytes, unsigned *chars)
{
	*bytes = 0;
	for (size_t i = 0; i < plan->n_requests; i++) {
		size_t answer = 0;
		size_t req = cg_request_rtu_bytes(&plan->requests[i], &answer);

		*bytes += (unsigned)(req + answer);
	}
	*chars = *bytes + (unsigned)plan->n_requests * RTU_GAP_CHARS;
}

/* Milliseconds of line time for chars characters at baud. */
static double line_ms(unsigned chars, int baud)
{
	return (double)chars * BITS_PER_CHAR * 1000.0 / baud;
}

/* Prints one line of figures for the profile in file. */
static int bench_profile(const char *file, int baud)
{
	cg_diag_t diag = {0};
	cg_profile_t *prof = NULL;
	cg_plan_t cg = {0}, per_point = {0};
	span_t *sp = NULL;
	unsigned cg_bytes, cg_chars, pp_bytes, pp_chars, min_bytes, min_chars;
	size_t min_req_bytes, min_req_chars;
	int rc;

	rc = cg_profile_load(file, NULL, NULL, &prof, &diag);
	for (size_t i = 0; i < diag.n; i++)
		cg_log(CG_LOG_ERR, "%s", diag.lines[i]);
	cg_diag_free(&diag);
	if (rc < 0)
		return rc;
	rc = cg_plan_build(prof->points, prof->n_points, true, DRIVER_MERGE_GAP, &cg);
	if (rc == 0)
		rc = cg_plan_build(prof->points, prof->n_points, false, 0, &per_point);
	sp = calloc(prof->n_points ? prof->n_points : 1, sizeof(*sp));
	if (rc < 0 || !sp) {
		rc = rc < 0 ? rc : CG_ENOMEM;
		goto free_all;
	}
	for (size_t i = 0; i < prof->n_points; i++) {
		const cg_point_t *p = &prof->points[i];
		size_t w = bit_table(p->table) ? 1 : cg_type_registers(p->type);

		sp[i] = (span_t){.table = p->table,
		                 .start = p->address,
		                 .end = p->address + (unsigned)(w ? w : 1)};
	}
	plan_cost(&cg, &cg_bytes, &cg_chars);
	plan_cost(&per_point, &pp_bytes, &pp_chars);
	min_bytes = min_cost(sp, prof->n_points, false, &min_req_bytes);
	min_chars = min_cost(sp, prof->n_points, true, &min_req_chars);
	bench_result("profile=%s points=%zu cg_requests=%zu cg_bytes=%u min_requests=%zu "
	             "min_bytes=%u per_point_requests=%zu per_point_bytes=%u baud=%d "
	             "cg_poll_ms=%.2f min_poll_ms=%.2f limit_polls_s=%.2f",
	             prof->name, prof->n_points, cg.n_requests, cg_bytes, min_req_bytes, min_bytes,
	             per_point.n_requests, pp_bytes, baud, line_ms(cg_chars, baud),
	             line_ms(min_chars, baud), 1000.0 / line_ms(min_chars, baud));
	(void)min_req_chars;

free_all:
	free(sp);
	cg_plan_free(&cg);
	cg_plan_free(&per_point);
	cg_profile_free(prof);
	return rc;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Usage: bench_plan PROFILE_DIR [BAUD]. One line per profile, in name order. */
int main(int argc, char **argv)
{
	char *names[256], path[PATH_MAX];
	size_t n = 0;
	struct dirent *e;
	DIR *d;
	int baud = argc > 2 ? atoi(argv[2]) : 9600, status = 0;

	cg_log_set_level(CG_LOG_WARNING);
	if (argc < 2 || baud <= 0) {
		cg_err("usage: bench_plan PROFILE_DIR [BAUD]");
		return 2;
	}
	d = opendir(argv[1]);
	if (!d) {
		cg_err("bench_plan: cannot open %s", argv[1]);
		return 1;
	}
	while ((e = readdir(d)) && n < 256) {
		size_t len = strlen(e->d_name);

		if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0)
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_name);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", argv[1], names[i]);
		if (names[i] && bench_profile(path, baud) < 0)
			status = 1;
		free(names[i]);
	}
	return status;
}
