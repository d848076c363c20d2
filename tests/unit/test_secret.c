/* The MQTT password is never where a core dump would show it: every copy is in pages marked MADV_DONTDUMP and wiped when released. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/secret.h"
#include "gateway/config.h"
#include "uplink/publisher.h"

#define SCAN_CHUNK (1 << 20)
/* Mappings larger than this are reservations, not memory in use: ASan's shadow is
 * terabytes of readable zero pages. Nothing the code under test allocates is in one. */
#define SCAN_MAX ((uintptr_t)1 << 36)

static char tmp_dir[PATH_MAX / 2];
/* Made at run time, in pages of their own left out of dumps and of the scans, so that
 * the only other copies are the ones the code under test makes: the two passwords, and
 * the buffer the scan reads memory into. */
static char *marker[2];
static unsigned char *scan_buf;

/* How many times text occurs in this process's memory: in the mappings a core dump
 * would hold (dumpable_only: readable ones not marked dd in /proc/self/smaps), or in
 * every readable one. Read through /proc/self/mem, so that a guard page is an error,
 * not a crash; the test's own buffers are left out. */
static int occurrences(const char *text, bool dumpable_only)
{
	size_t tlen = strlen(text);
	char line[512], perms[8];
	uintptr_t lo = 0, hi = 0, start = 0, end = 0;
	bool readable = false, have = false;
	int count = 0, mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	FILE *f = fopen("/proc/self/smaps", "r");

	assert_true(mem >= 0);
	assert_non_null(f);
	for (;;) {
		bool eof = !fgets(line, sizeof(line), f);
		bool head = !eof && sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s", &lo, &hi, perms) == 3;
		bool flags = !eof && strncmp(line, "VmFlags:", 8) == 0;

		if (flags && have && readable && !(dumpable_only && strstr(line, " dd"))) {
			/* Scan [start, end) in chunks that overlap by tlen - 1 bytes. */
			for (uintptr_t at = start; at < end;) {
				size_t want = end - at < SCAN_CHUNK ? end - at : SCAN_CHUNK;
				ssize_t got = pread(mem, scan_buf, want, (off_t)at);
				unsigned char *p = scan_buf;

				if (got <= 0)
					break;
				while ((p = memmem(p, (size_t)got - (size_t)(p - scan_buf), text, tlen))) {
					count++;
					p++;
				}
				if ((size_t)got < tlen || at + (size_t)got >= end)
					break;
				at += (size_t)got - (tlen - 1);
			}
		}
		if (flags)
			have = false;
		if (head) {
			start = lo;
			end = hi;
			readable = perms[0] == 'r' && hi - lo <= SCAN_MAX;
			have = true;
			/* The scan buffer and the markers hold the text by design. */
			if ((uintptr_t)scan_buf >= lo && (uintptr_t)scan_buf < hi)
				have = false;
			for (int i = 0; i < 2; i++)
				if ((uintptr_t)marker[i] >= lo && (uintptr_t)marker[i] < hi)
					have = false;
		}
		if (eof)
			break;
	}
	fclose(f);
	close(mem);
	return count;
}

/* Writes marker i as a password file, from its own pages. */
static const char *secret_file(int i)
{
	static char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/password-%d", tmp_dir, i);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, marker[i], strlen(marker[i])), (ssize_t)strlen(marker[i]));
	assert_int_equal(write(fd, "\n", 1), 1);
	close(fd);
	return path;
}

static void test_password_out_of_core_dumps(void **state)
{
	cg_publisher_opts_t po = {
	    .uri = "tcp://127.0.0.1:1",
	    .client_id = "gw-secret",
	    .username = "gw",
	    .keepalive_s = 30,
	    .max_inflight = 4,
	    .max_queued = 4,
	    .reconnect_min_s = 1,
	    .reconnect_max_s = 2,
	    .status_topic = "city/test/gw-secret/status",
	    .offline_payload = "{}",
	};
	cg_publisher_t *pub = NULL;
	char *pw = NULL, *next = NULL;

	(void)state;
	assert_int_equal(occurrences(marker[0], false), 0);

	/* Read from its file: the copy is in pages a dump leaves out, and the read
	 * buffer was wiped. */
	assert_int_equal(cg_config_read_secret(secret_file(0), &pw), 0);
	assert_string_equal(pw, marker[0]);
	assert_int_equal(occurrences(marker[0], true), 0);
	assert_int_equal(occurrences(marker[0], false), 1);

	/* The publisher keeps its own copy for every connect: out of dumps too. */
	po.password = pw;
	assert_int_equal(cg_publisher_new(&po, &pub), 0);
	assert_int_equal(occurrences(marker[0], true), 0);
	assert_int_equal(occurrences(marker[0], false), 2);

	/* Replaced (a reload with a new password file): the old one is wiped. */
	assert_int_equal(cg_config_read_secret(secret_file(1), &next), 0);
	cg_secret_free(pw);
	pw = next;
	assert_int_equal(occurrences(marker[0], false), 1);
	assert_int_equal(occurrences(marker[1], true), 0);
	cg_publisher_free(pub);
	assert_int_equal(occurrences(marker[0], false), 0);
	cg_secret_free(pw);
	assert_int_equal(occurrences(marker[1], false), 0);
}

/* cg_secret_dup() of NULL is NULL, of "" an empty string; both free. */
static void test_secret_edges(void **state)
{
	char *s = (char *)1;

	(void)state;
	assert_int_equal(cg_secret_dup(NULL, &s), 0);
	assert_null(s);
	cg_secret_free(s);
	assert_int_equal(cg_secret_dup("", &s), 0);
	assert_string_equal(s, "");
	cg_secret_free(s);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/cg-secret-XXXXXX");
	if (!mkdtemp(tmp_dir))
		return -1;
	scan_buf = mmap(NULL, SCAN_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
	                0);
	if (scan_buf == MAP_FAILED)
		return -1;
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	for (int i = 0; i < 2; i++) {
		marker[i] = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		                 0);
		if (marker[i] == MAP_FAILED)
			return -1;
		/* Letter by letter, so that no formatting buffer ever holds it whole. */
		for (int j = 0; j < 32; j++)
			marker[i][j] = (char)('a' + rand() % 26);
		marker[i][32] = '\0';
	}
	return 0;
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
	    cmocka_unit_test(test_password_out_of_core_dumps),
	    cmocka_unit_test(test_secret_edges),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
