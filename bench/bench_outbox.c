/* Benchmark of the outbox: put and ack throughput by batch size, synchronous NORMAL and FULL. */
#include "base/error.h"
#include "base/log.h"
#include "store/outbox.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REPS        3
#define PAYLOAD_LEN 200
#define BENCH_TOPIC "city/bench/gw-bench-0001/air-quality/aq-001"
#define MAX_BATCH   1000

struct result {
	double put; /* rows per second */
	double ack;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Removes a store and its WAL files so that every repetition starts from nothing. */
static void remove_store(const char *path)
{
	char side[PATH_MAX + 8];

	unlink(path);
	snprintf(side, sizeof(side), "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	unlink(side);
}

/* One run on a fresh store: total rows put in batches of batch rows, then acked in
 * batches of the same size, each phase timed on its own. */
static int run_once(const char *path, bool sync_full, size_t batch, size_t total,
                    struct result *res)
{
	static char payload[PAYLOAD_LEN];
	static cg_outbox_row_t rows[MAX_BATCH];
	static int64_t seqs[MAX_BATCH];
	cg_outbox_opts_t opts = {.sync_full = sync_full};
	cg_outbox_t *ob = NULL;
	size_t done, i;
	double t0;
	int err;

	memset(payload, 'p', sizeof(payload));
	remove_store(path);
	err = cg_outbox_open(path, &opts, &ob);
	if (err)
		return err;

	t0 = now_s();
	for (done = 0; done < total; done += batch) {
		for (i = 0; i < batch; i++) {
			rows[i].seq = (int64_t)(done + i + 1);
			rows[i].topic = BENCH_TOPIC;
			rows[i].payload = payload;
			rows[i].len = sizeof(payload);
			rows[i].created_ms = 1700000000000LL + rows[i].seq;
		}
		err = cg_outbox_put(ob, rows, batch);
		if (err)
			goto close_ob;
	}
	res->put = (double)total / (now_s() - t0);

	t0 = now_s();
	for (done = 0; done < total; done += batch) {
		for (i = 0; i < batch; i++)
			seqs[i] = (int64_t)(done + i + 1);
		err = cg_outbox_ack(ob, seqs, batch);
		if (err)
			goto close_ob;
	}
	res->ack = (double)total / (now_s() - t0);

close_ob:
	cg_outbox_close(ob);
	remove_store(path);
	return err;
}

/* The gateway's pattern on a fresh store: each cycle commits batch rows, fetches
 * them in window-sized chunks as the publisher does, and acks the rows of the
 * previous cycle, so that one batch is always in flight. Returns rows/s through
 * the queue. */
static int run_queue(const char *path, size_t batch, size_t window, size_t total, double *rate)
{
	static char payload[PAYLOAD_LEN];
	static cg_outbox_row_t rows[MAX_BATCH];
	static int64_t seqs[MAX_BATCH];
	cg_outbox_opts_t opts = {0};
	cg_outbox_t *ob = NULL;
	int64_t cursor = 0;
	size_t done, i;
	double t0;
	int err;

	memset(payload, 'p', sizeof(payload));
	remove_store(path);
	err = cg_outbox_open(path, &opts, &ob);
	if (err)
		return err;
	t0 = now_s();
	for (done = 0; done <= total; done += batch) {
		size_t got = 0;

		if (done < total) {
			for (i = 0; i < batch; i++) {
				rows[i].seq = (int64_t)(done + i + 1);
				rows[i].topic = BENCH_TOPIC;
				rows[i].payload = payload;
				rows[i].len = sizeof(payload);
				rows[i].created_ms = 1700000000000LL + rows[i].seq;
			}
			err = cg_outbox_put(ob, rows, batch);
			if (err)
				goto close_ob;
		}
		while (got < batch && done < total) {
			cg_outbox_row_t *out = NULL;
			size_t n = 0;

			err = cg_outbox_fetch(ob, cursor, 0, window, &out, &n);
			if (err || n == 0)
				break;
			cursor = out[n - 1].seq;
			got += n;
			cg_outbox_rows_free(out, n);
		}
		if (err)
			goto close_ob;
		if (done == 0)
			continue;
		for (i = 0; i < batch; i++)
			seqs[i] = (int64_t)(done - batch + i + 1);
		err = cg_outbox_ack(ob, seqs, batch);
		if (err)
			goto close_ob;
	}
	*rate = (double)total / (now_s() - t0);

close_ob:
	cg_outbox_close(ob);
	remove_store(path);
	return err;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/* Usage: bench_outbox [DIR [queue]]. The store is created in DIR (default $TMPDIR or
 * /tmp), which should be on the disk of interest: on tmpfs, FULL costs nothing. With
 * "queue" only the gateway's pattern runs, for a profiler. */
int main(int argc, char **argv)
{
	static const size_t batches[] = {1, 100, 1000};
	const char *dir = argc > 1 ? argv[1] : getenv("TMPDIR");
	char path[PATH_MAX], line[256];
	size_t s, b, r;

	if (!dir || !*dir)
		dir = "/tmp";
	snprintf(path, sizeof(path), "%s/bench_outbox.%ld.db", dir, (long)getpid());
	if (argc > 2 && strcmp(argv[2], "queue") == 0) {
		double rate = 0;
		int err = run_queue(path, 1000, 64, 1000000, &rate);

		snprintf(line, sizeof(line), "queue: %.0f rows/s, %.2f us/row", rate, 1e6 / rate);
		cg_out(line);
		return err ? 1 : 0;
	}
	cg_log_set_level(CG_LOG_WARNING);
	snprintf(line, sizeof(line),
	         "outbox bench: %d-byte payloads, median of %d runs, store in %s", PAYLOAD_LEN,
	         REPS, dir);
	cg_out(line);
	cg_out("sync    batch      rows   put rows/s  x batch-1   ack rows/s  x batch-1");

	for (s = 0; s < 2; s++) {
		bool sync_full = s == 1;
		double base_put = 0, base_ack = 0;

		for (b = 0; b < sizeof(batches) / sizeof(batches[0]); b++) {
			/* Enough rows for each run to last a good part of a second. */
			size_t total = batches[b] == 1 ? (sync_full ? 2000 : 20000) : 200000;
			double puts[REPS], acks[REPS], put, ack;

			for (r = 0; r < REPS; r++) {
				struct result res;
				int err = run_once(path, sync_full, batches[b], total, &res);

				if (err) {
					cg_log(CG_LOG_ERR, "bench: %s", cg_strerror(err));
					return 1;
				}
				puts[r] = res.put;
				acks[r] = res.ack;
			}
			put = median(puts, REPS);
			ack = median(acks, REPS);
			if (batches[b] == 1) {
				base_put = put;
				base_ack = ack;
			}
			snprintf(line, sizeof(line), "%-6s %6zu %9zu %12.0f %9.1fx %12.0f %9.1fx",
			         sync_full ? "full" : "normal", batches[b], total, put,
			         put / base_put, ack, ack / base_ack);
			cg_out(line);
		}
	}

	/* The whole life of a row as the gateway drives it, against a put alone. */
	{
		double q[REPS], put_only[REPS], qm, pm;

		for (r = 0; r < REPS; r++) {
			struct result res;
			int err = run_queue(path, 1000, 64, 200000, &q[r]);

			if (!err)
				err = run_once(path, false, 1000, 200000, &res);
			if (err) {
				cg_log(CG_LOG_ERR, "bench: %s", cg_strerror(err));
				return 1;
			}
			put_only[r] = res.put;
		}
		qm = median(q, REPS);
		pm = median(put_only, REPS);
		snprintf(line, sizeof(line),
		         "queue  put 1000, fetch 64s, ack 1000: %9.0f rows/s, %5.2f us/row,"
		         " %.2fx of put alone",
		         qm, 1e6 / qm, qm / pm);
		cg_out(line);
	}
	return 0;
}
