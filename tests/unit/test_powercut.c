/* Power cuts, simulated by a VFS that loses every write not fsynced, against the real pipeline and
 * outbox: no seq is ever reused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/diag.h"
#include "base/error.h"
#include "base/log.h"
#include "gateway/config.h"
#include "gateway/gateway_private.h"
#include "powercut_vfs.h"

/* Simulated cuts per store.sync mode. */
#define CUTS 60
/* Readings per commit: 200 readings/s at store.batch_ms = 100. */
#define PER_COMMIT 20
/* Commits after which a published reading is acknowledged (and its row deleted). */
#define ACK_LAG 3
/* A cut comes after up to this many writes and syncs (beyond a WAL checkpoint, which
 * comes every 1000 pages). */
#define MAX_OPS 3000

static char tmp_dir[PATH_MAX / 2];

/* What the test knows of each seq, indexed by seq. */
enum seq_state { SEQ_UNUSED, SEQ_PUBLISHED, SEQ_ACKED, SEQ_LOST };

struct seq_info {
	uint64_t hash; /* of the payload it was published with */
	unsigned char state;
	bool reused; /* published with another payload too */
};

struct run {
	const char *mode;
	gw_t *g;
	struct seq_info *seqs;
	size_t cap;
	int64_t sent_to; /* highest seq published (committed before a cut) */
	uint64_t value;  /* makes every reading's payload unique */
	long made, committed, lost, reused, lower_next, commits_after_cut;
	double seconds;
};

static uint64_t fnv1a(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

static struct seq_info *info(struct run *run, int64_t seq)
{
	assert_true(seq > 0 && seq < 100000000);
	if ((size_t)seq >= run->cap) {
		size_t cap = (size_t)seq * 2;

		run->seqs = realloc(run->seqs, cap * sizeof(*run->seqs));
		assert_non_null(run->seqs);
		memset(run->seqs + run->cap, 0, (cap - run->cap) * sizeof(*run->seqs));
		run->cap = cap;
	}
	return &run->seqs[seq];
}

/* Notes that seq went out with this payload: a seq already published with another
 * payload is a reuse. */
static void publish(struct run *run, int64_t seq, const char *payload, size_t len)
{
	struct seq_info *s = info(run, seq);
	uint64_t h = fnv1a(payload, len);

	if (s->state != SEQ_UNUSED && s->hash != h && !s->reused) {
		s->reused = true;
		if (run->reused++ < 5)
			print_message("%s: seq %lld published with two payloads\n", run->mode,
			              (long long)seq);
	}
	if (s->state == SEQ_UNUSED) {
		s->hash = h;
		s->state = SEQ_PUBLISHED;
	}
	if (seq > run->sent_to)
		run->sent_to = seq;
}

/* A gateway on the config with the store open, as cg_gateway_new() makes it, without
 * a publisher or buses: the test plays the bus workers and the broker. */
static gw_t *gateway(const char *mode, const char *path)
{
	char text[1024];
	cg_diag_t d = {0};
	cg_config_t *cfg = NULL;
	gw_t *g = calloc(1, sizeof(*g));

	snprintf(
	    text, sizeof(text),
	    "{\"gateway\": {\"id\": \"gw-cut\"},"
	    " \"mqtt\": {\"uri\": \"tcp://127.0.0.1:1883\", \"topic_prefix\": \"city/test\"},"
	    " \"store\": {\"path\": \"%s\", \"sync\": \"%s\"},"
	    " \"buses\": [{\"id\": \"uart-1\", \"type\": \"serial\", \"device\": \"/dev/null\"}],"
	    " \"sensors\": [{\"id\": \"pm-001\", \"bus\": \"uart-1\", \"driver\": \"pms5003\"}]}",
	    path, mode);
	assert_int_equal(cg_config_parse(text, strlen(text), "powercut.json", &cfg, &d), 0);
	cg_diag_free(&d);
	assert_non_null(g);
	g->cfg = cfg;
	gw_set_encode_ctx(g);
	assert_int_equal(gw_open_outbox(g), 0);
	return g;
}

static void gateway_free(gw_t *g)
{
	cg_outbox_close(g->ob);
	for (size_t i = 0; i < g->n_pending; i++)
		gw_free_row(&g->pending[i]);
	free(g->pending);
	free(g->acks);
	cg_config_free(g->cfg);
	free(g);
}

/* One commit's worth of readings, staged and committed by the pipeline's own code
 * (gw_stage gives the seqs, gw_store_pending commits). The rows count as published
 * only if the commit returned before the power went. */
static void commit_batch(struct run *run)
{
	gw_t *g = run->g;
	int64_t seqs[PER_COMMIT];
	uint64_t hashes[PER_COMMIT];
	size_t n;

	for (int i = 0; i < PER_COMMIT; i++) {
		cg_reading_t r;

		cg_reading_init(&r);
		snprintf(r.sensor, sizeof(r.sensor), "pm-001");
		r.kind = CG_KIND_AIR_QUALITY;
		r.ts_ms = 1795606800000LL + (int64_t)run->value;
		assert_int_equal(cg_reading_add_number(&r, "pm25", (double)run->value++, "ug/m3"),
		                 0);
		gw_stage(g, &r, -1);
	}
	n = g->n_pending;
	assert_true(n <= PER_COMMIT);
	for (size_t i = 0; i < n; i++) {
		seqs[i] = g->pending[i].seq;
		hashes[i] = fnv1a(g->pending[i].payload, g->pending[i].len);
	}
	run->made += PER_COMMIT;
	gw_store_pending(g, true);
	if (pc_vfs_cut_happened() || g->n_pending != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct seq_info *s = info(run, seqs[i]);

		if (s->state != SEQ_UNUSED && s->hash != hashes[i]) {
			if (!s->reused && run->reused++ < 5)
				print_message("%s: seq %lld committed again with another payload\n",
				              run->mode, (long long)seqs[i]);
			s->reused = true;
		} else if (s->state == SEQ_UNUSED) {
			s->hash = hashes[i];
			s->state = SEQ_PUBLISHED;
		}
		if (seqs[i] > run->sent_to)
			run->sent_to = seqs[i];
	}
	run->committed += (long)n;
}

/* The broker acknowledges what was published ACK_LAG commits ago (from then on it is
 * delivered, whether its row goes or not); the pipeline deletes it (gw_add_ack,
 * gw_flush_acks). */
static void ack_old(struct run *run, int64_t *acked_to)
{
	int64_t to = run->sent_to - ACK_LAG * PER_COMMIT;

	for (int64_t seq = *acked_to + 1; seq <= to; seq++) {
		if (info(run, seq)->state == SEQ_PUBLISHED) {
			gw_add_ack(run->g, seq);
			info(run, seq)->state = SEQ_ACKED;
		}
	}
	if (to > *acked_to)
		*acked_to = to;
	gw_flush_acks(run->g, true);
}

/* After a cut and a restart: every row stored is checked against what was published
 * with its seq; rows committed while the power was going are published now. A reading
 * published and not acknowledged that is no longer stored was lost. */
static void check_after_cut(struct run *run)
{
	cg_outbox_row_t *rows = NULL;
	size_t n = 0;
	int64_t at = 1;

	assert_int_equal(cg_outbox_fetch(run->g->ob, 0, 0, SIZE_MAX, &rows, &n), 0);
	for (size_t i = 0; i < n; i++) {
		for (; at < rows[i].seq && at <= run->sent_to; at++)
			if (info(run, at)->state == SEQ_PUBLISHED) {
				info(run, at)->state = SEQ_LOST;
				run->lost++;
			}
		if (info(run, rows[i].seq)->state == SEQ_UNUSED)
			run->commits_after_cut++;
		publish(run, rows[i].seq, rows[i].payload, rows[i].len);
		at = rows[i].seq + 1;
	}
	for (; at <= run->sent_to; at++)
		if (info(run, at)->state == SEQ_PUBLISHED) {
			info(run, at)->state = SEQ_LOST;
			run->lost++;
		}
	cg_outbox_rows_free(rows, n);
	/* The next seq the gateway will give is above every one published. */
	if (run->g->next_seq <= run->sent_to)
		run->lower_next++;
}

/* The store after a cut passes SQLite's own check. */
static void check_integrity(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void run_cuts(struct run *run, unsigned seed)
{
	char path[PATH_MAX];
	struct timespec t0, t1;
	pc_counts_t c0, c1;
	int64_t acked_to = 0;

	snprintf(path, sizeof(path), "%s/%s.db", tmp_dir, run->mode);
	run->g = gateway(run->mode, path);
	pc_vfs_counts(&c0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int cut = 0; cut < CUTS; cut++) {
		pc_vfs_cut_after((long)(rand_r(&seed) % MAX_OPS));
		while (!pc_vfs_cut_happened()) {
			commit_batch(run);
			ack_old(run, &acked_to);
		}
		/* The power is gone: whatever the process does now never reaches the disk. */
		gateway_free(run->g);
		assert_int_equal(pc_vfs_restore((pc_cut_kind_t)(cut % 3), seed + (unsigned)cut), 0);
		check_integrity(path);
		run->g = gateway(run->mode, path);
		check_after_cut(run);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pc_vfs_counts(&c1);
	gateway_free(run->g);
	run->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	print_message("powercut sync=%s: %d cuts (%ld torn), %ld readings made (%.0f/s), "
	              "%ld committed, %ld lost, %ld seqs published with two payloads, "
	              "%ld restarts below a published seq, %ld rows committed as the power went; %ld writes, "
	              "%ld syncs\n",
	              run->mode, CUTS, c1.torn - c0.torn, run->made, run->made / run->seconds,
	              run->committed, run->lost, run->reused, run->lower_next,
	              run->commits_after_cut, c1.writes - c0.writes, c1.syncs - c0.syncs);
	free(run->seqs);
}

/* store.sync = normal: cuts lose the last commits, but never make a seq mean two
 * readings. */
static void test_powercut_normal(void **state)
{
	struct run run = {.mode = "normal"};

	(void)state;
	run_cuts(&run, 19);
	assert_int_equal(run.reused, 0);
	assert_int_equal(run.lower_next, 0);
	assert_true(run.made / run.seconds >= 200);
}

/* store.sync = full: nothing committed is ever lost either. */
static void test_powercut_full(void **state)
{
	struct run run = {.mode = "full"};

	(void)state;
	run_cuts(&run, 23);
	assert_int_equal(run.reused, 0);
	assert_int_equal(run.lower_next, 0);
	assert_int_equal(run.lost, 0);
	assert_true(run.made / run.seconds >= 200);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/cg-powercut-XXXXXX");
	if (!mkdtemp(tmp_dir))
		return -1;
	/* The restart after each cut logs the skipped seqs; keep the output to the figures. */
	cg_log_set_level(CG_LOG_WARNING);
	return pc_vfs_register() == SQLITE_OK ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_powercut_normal),
	    cmocka_unit_test(test_powercut_full),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
