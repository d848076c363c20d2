/* Tests of citygate-sim run as a process: values and faults over its pty and its TCP port. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <modbus.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/error.h"
#include "drivers/modbus/decode.h"
#include "drivers/modbus/profile.h"
#include "tools/sim/sim_slave.h"

#define SIM_BIN  CG_BINARY_DIR "/citygate-sim"
#define PROFILES CG_SOURCE_DIR "/drivers/profiles"
/* Examples of the format, not shipped (traffic-counter). */
#define EXAMPLE_PROFILES CG_SOURCE_DIR "/examples/profiles"

/* A test fixture with status rules, for force=. */
#define CO2_STATUS CG_SOURCE_DIR "/tests/fixtures/profiles/co2-status.json"

/* A profile that uses every table, type and word order, names the simulator
 * does not know (so their range comes from min/max), a counter, and a known
 * quantity in another unit than the simulator's table. */
static const char types_profile[] =
    "{ \"name\": \"types\", \"kind\": \"traffic\", \"points\": [\n"
    "{ \"name\": \"u16v\", \"table\": \"holding\", \"address\": 0, \"type\": \"u16\","
    "  \"min\": 10, \"max\": 20 },\n"
    "{ \"name\": \"i16v\", \"table\": \"holding\", \"address\": 1, \"type\": \"i16\","
    "  \"scale\": 0.5, \"offset\": -10, \"min\": -20, \"max\": -5 },\n"
    "{ \"name\": \"u32v\", \"table\": \"holding\", \"address\": 2, \"type\": \"u32\","
    "  \"min\": 100000, \"max\": 200000 },\n"
    "{ \"name\": \"i32v\", \"table\": \"holding\", \"address\": 4, \"type\": \"i32\","
    "  \"order\": \"CDAB\", \"min\": -70000, \"max\": -60000 },\n"
    "{ \"name\": \"f32v\", \"table\": \"input\", \"address\": 0, \"type\": \"f32\","
    "  \"order\": \"BADC\", \"min\": 1.5, \"max\": 2.5 },\n"
    "{ \"name\": \"f32w\", \"table\": \"input\", \"address\": 2, \"type\": \"f32\","
    "  \"order\": \"DCBA\", \"min\": -3, \"max\": -2 },\n"
    "{ \"name\": \"u64v\", \"table\": \"input\", \"address\": 4, \"type\": \"u64\","
    "  \"min\": 5000000000, \"max\": 6000000000 },\n"
    "{ \"name\": \"i64v\", \"table\": \"input\", \"address\": 8, \"type\": \"i64\","
    "  \"order\": \"CDAB\", \"min\": -6000000000, \"max\": -5000000000 },\n"
    "{ \"name\": \"f64v\", \"table\": \"input\", \"address\": 12, \"type\": \"f64\","
    "  \"order\": \"DCBA\", \"min\": 1000, \"max\": 2000 },\n"
    "{ \"name\": \"temperature\", \"table\": \"input\", \"address\": 16, \"type\": \"i16\","
    "  \"scale\": 0.01, \"unit\": \"K\" },\n"
    "{ \"name\": \"counterA\", \"table\": \"holding\", \"address\": 20, \"type\": \"u16\","
    "  \"unit\": \"count\" },\n"
    "{ \"name\": \"mode\", \"table\": \"holding\", \"address\": 22, \"type\": \"u16\","
    "  \"states\": [\"free\", \"occupied\", \"closed\", \"unknown\"] },\n"
    "{ \"name\": \"coilv\", \"table\": \"coil\", \"address\": 3, \"type\": \"bool\" },\n"
    "{ \"name\": \"alarmFault\", \"table\": \"discrete\", \"address\": 7, \"type\": \"bool\" }\n"
    "] }\n";

/* A running citygate-sim and what it printed. */
typedef struct sim_proc {
	pid_t pid;
	int out;               /* read end of its stdout */
	char rtu[4][PATH_MAX]; /* the first word after "rtu": link or pty */
	char pts[4][64];
	size_t n_rtu;
	int tcp[4];
	size_t n_tcp;
	int64_t ready_ms; /* monotonic time "ready" was read */
} sim_proc_t;

typedef struct fixture {
	char dir[64];
	char link[PATH_MAX];
	char types_path[PATH_MAX];
	sim_proc_t sim;
	bool running;
	cg_profile_t *aqt530, *ld120, *types;
} fixture_t;

/* Waits up to timeout_ms for pid to exit; returns its status or -1. */
static int wait_exit(pid_t pid, int timeout_ms)
{
	int status;

	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0)
			return -1;
		cg_sleep_ms(10);
	}
	return -1;
}

/* Starts citygate-sim with args (NULL-terminated, argv[0] excluded) and
 * reads its stdout until "ready". Returns 0 when ready; otherwise -1 with the
 * exit status (or -1 if it did not exit) in *status. */
static int sim_start(const char *const *args, sim_proc_t *p, int *status)
{
	const char *argv[64] = {SIM_BIN};
	char buf[8192];
	size_t len = 0, n_args = 1;
	int fds[2];

	memset(p, 0, sizeof(*p));
	*status = -1;
	for (size_t i = 0; args[i] && n_args + 1 < 64; i++)
		argv[n_args++] = args[i];
	argv[n_args] = NULL;
	if (pipe(fds) != 0)
		return -1;
	p->pid = fork();
	if (p->pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execv(SIM_BIN, (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	p->out = fds[0];
	for (int64_t end = cg_mono_ms() + 15000; cg_mono_ms() < end;) {
		struct pollfd pfd = {.fd = p->out, .events = POLLIN};
		char *line, *nl;
		ssize_t n;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = read(p->out, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		for (line = buf; (nl = strchr(line, '\n')); line = nl + 1) {
			*nl = '\0';
			if (strcmp(line, "ready") == 0) {
				p->ready_ms = cg_mono_ms();
				return 0;
			}
			if (strncmp(line, "rtu ", 4) == 0 && p->n_rtu < 4) {
				sscanf(line, "rtu %4095s %63s", p->rtu[p->n_rtu], p->pts[p->n_rtu]);
				p->n_rtu++;
			} else if (strncmp(line, "tcp 127.0.0.1 ", 14) == 0 && p->n_tcp < 4) {
				p->tcp[p->n_tcp++] = atoi(line + 14);
			} else {
				print_error("unexpected output from citygate-sim: %s\n", line);
			}
		}
		len -= (size_t)(line - buf);
		memmove(buf, line, len);
	}
	*status = wait_exit(p->pid, 5000);
	if (*status == -1) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
	}
	close(p->out);
	return -1;
}

/* SIGTERMs a simulator and returns its exit status (-1 if it hung). */
static int sim_stop(sim_proc_t *p)
{
	int status;

	kill(p->pid, SIGTERM);
	status = wait_exit(p->pid, 10000);
	if (status == -1) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
	}
	close(p->out);
	return status;
}

/* Runs a simulator that must refuse its arguments; returns its exit code. */
static int sim_refused(const char *const *args)
{
	sim_proc_t p;
	int status;

	if (sim_start(args, &p, &status) == 0) {
		sim_stop(&p);
		fail_msg("citygate-sim accepted arguments it should refuse (%s ...)", args[0]);
	}
	assert_true(status != -1 && WIFEXITED(status));
	return WEXITSTATUS(status);
}

static cg_profile_t *load_profile(const char *ref)
{
	const char *const dirs[] = {PROFILES, EXAMPLE_PROFILES, NULL};
	cg_diag_t d = {0};
	cg_profile_t *p = NULL;

	if (cg_profile_load(ref, NULL, dirs, &p, &d) != 0)
		print_error("%s\n", d.n ? d.lines[0] : "cannot load profile");
	cg_diag_free(&d);
	return p;
}

/* Stops the shared simulator if it runs and removes every file the tests
 * made; accepts a half-built fixture. */
static void fixture_free(fixture_t *f)
{
	char path[PATH_MAX];

	if (!f)
		return;
	if (f->running)
		sim_stop(&f->sim);
	unlink(f->link);
	unlink(f->types_path);
	snprintf(path, sizeof(path), "%s/plain-file", f->dir);
	unlink(path);
	rmdir(f->dir);
	cg_profile_free(f->aqt530);
	cg_profile_free(f->ld120);
	cg_profile_free(f->types);
	free(f);
}

static int group_setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	char types_arg[PATH_MAX + 16];
	FILE *fp;
	int status;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/cg-test-sim-XXXXXX");
	if (!mkdtemp(f->dir))
		goto fail;
	snprintf(f->link, sizeof(f->link), "%s/ttyRS485", f->dir);
	snprintf(f->types_path, sizeof(f->types_path), "%s/types.json", f->dir);
	fp = fopen(f->types_path, "w");
	if (!fp)
		goto fail;
	fputs(types_profile, fp);
	fclose(fp);
	/* A stale link from an earlier run must be replaced. */
	if (symlink("/nonexistent/stale-pty", f->link) != 0)
		goto fail;
	f->aqt530 = load_profile("aqt530");
	f->ld120 = load_profile("ld120");
	f->types = load_profile(f->types_path);
	if (!f->aqt530 || !f->ld120 || !f->types)
		goto fail;
	snprintf(types_arg, sizeof(types_arg), "7:%s", f->types_path);
	/* Units 1-9 mean the same on both endpoints where they exist. */
	/* clang-format off */
	const char *const args[] = {
		"--seed", "42", "--profile-dir", PROFILES, "--profile-dir", EXAMPLE_PROFILES,
		"--rtu", f->link,
		"--slave", "1:aqt530", "--slave", "2:aqt530:silent",
		"--slave", "3:aqt530:exception", "--slave", "4:aqt530:crc",
		"--slave", "5:aqt530:slow=300", "--slave", "6:ld120", "--slave", types_arg,
		"--tcp", "0",
		"--slave", "1:aqt530", "--slave", "2:aqt530:silent",
		"--slave", "3:aqt530:exception=6", "--slave", "4:aqt530:crc",
		"--slave", "5:aqt530:slow=300", "--slave", "6:ld120", "--slave", types_arg,
		"--slave", "8:aqt530:flaky=50,silent", "--slave", "9:traffic-counter", NULL};
	/* clang-format on */
	if (sim_start(args, &f->sim, &status) != 0) {
		print_error("citygate-sim did not become ready (status %d)\n", status);
		goto fail;
	}
	f->running = true;
	*state = f;
	return 0;
fail:
	fixture_free(f);
	return -1;
}

static int group_teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

static void set_timeout(modbus_t *ctx, int timeout_ms)
{
	modbus_set_response_timeout(ctx, (uint32_t)(timeout_ms / 1000),
	                            (uint32_t)(timeout_ms % 1000) * 1000);
}

static modbus_t *rtu_client(const char *path, int unit, int timeout_ms)
{
	modbus_t *ctx = modbus_new_rtu(path, 9600, 'N', 8, 1);

	assert_non_null(ctx);
	assert_int_equal(modbus_set_slave(ctx, unit), 0);
	set_timeout(ctx, timeout_ms);
	assert_int_equal(modbus_connect(ctx), 0);
	return ctx;
}

static modbus_t *tcp_client(int port, int unit, int timeout_ms)
{
	modbus_t *ctx = modbus_new_tcp("127.0.0.1", port);

	assert_non_null(ctx);
	assert_int_equal(modbus_set_slave(ctx, unit), 0);
	set_timeout(ctx, timeout_ms);
	assert_int_equal(modbus_connect(ctx), 0);
	return ctx;
}

static void client_free(modbus_t *ctx)
{
	modbus_close(ctx);
	modbus_free(ctx);
}

/* Reads one point and gives its engineering value (0/1 for bits). Returns
 * 0, or -1 with errno from libmodbus. */
static int read_point(modbus_t *ctx, const cg_point_t *p, double *value)
{
	uint16_t regs[4];
	uint8_t bit;
	int n = (int)cg_type_registers(p->type), rc;
	double raw;

	switch (p->table) {
	case CG_TABLE_COIL:
	case CG_TABLE_DISCRETE:
		rc = p->table == CG_TABLE_COIL ? modbus_read_bits(ctx, p->address, 1, &bit)
		                               : modbus_read_input_bits(ctx, p->address, 1, &bit);
		if (rc != 1)
			return -1;
		*value = bit;
		return 0;
	default:
		rc = p->table == CG_TABLE_HOLDING
		         ? modbus_read_registers(ctx, p->address, n ? n : 1, regs)
		         : modbus_read_input_registers(ctx, p->address, n ? n : 1, regs);
		if (rc != (n ? n : 1))
			return -1;
		if (!n) {
			*value = regs[0];
			return 0;
		}
		assert_int_equal(cg_decode_registers(regs, p->type, p->order, &raw), 0);
		*value = cg_point_value(p, raw);
		return 0;
	}
}

/* The ranges the simulator promises for the AQT530's quantities. */
static const struct expect {
	const char *name;
	double lo, hi;
} aqt530_ranges[] = {
    {"no2", 5, 60},          {"so2", 1, 10},
    {"co", 100, 800},        {"h2s", 0, 5},
    {"o3", 10, 80},          {"no", 1, 30},
    {"pm25", 5, 35},         {"pm10", 10, 60},
    {"temperature", -5, 30}, {"relativeHumidity", 30, 90},
    {"pressure", 990, 1030},
};

static void assert_within(const char *name, double v, double lo, double hi)
{
	if (!(v >= lo && v <= hi))
		fail_msg("%s = %.17g, outside [%.17g, %.17g]", name, v, lo, hi);
}

/* Reads every AQT530 point from ctx and checks it against its range. */
static void check_aqt530(modbus_t *ctx, const cg_profile_t *prof)
{
	size_t checked = 0;

	for (size_t i = 0; i < prof->n_points; i++) {
		const cg_point_t *p = &prof->points[i];
		double v;

		if (read_point(ctx, p, &v) != 0)
			fail_msg("reading %s: %s", p->name, modbus_strerror(errno));
		for (size_t k = 0; k < sizeof(aqt530_ranges) / sizeof(aqt530_ranges[0]); k++) {
			if (strcmp(aqt530_ranges[k].name, p->name))
				continue;
			/* One step of the register's resolution for rounding. */
			assert_within(p->name, v, aqt530_ranges[k].lo - fabs(p->scale),
			              aqt530_ranges[k].hi + fabs(p->scale));
			checked++;
		}
	}
	assert_int_equal(checked, prof->n_points);
}

static void test_ready_lines(void **state)
{
	fixture_t *f = *state;
	char target[64];
	ssize_t n;

	assert_int_equal(f->sim.n_rtu, 1);
	assert_int_equal(f->sim.n_tcp, 1);
	assert_string_equal(f->sim.rtu[0], f->link);
	assert_true(strncmp(f->sim.pts[0], "/dev/pts/", 9) == 0);
	n = readlink(f->link, target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_string_equal(target, f->sim.pts[0]);
	assert_in_range(f->sim.tcp[0], 1, 65535);
}

static void test_rtu_aqt530_values(void **state)
{
	fixture_t *f = *state;
	modbus_t *ctx = rtu_client(f->link, 1, 500);

	check_aqt530(ctx, f->aqt530);
	client_free(ctx);
}

static void test_tcp_aqt530_values(void **state)
{
	fixture_t *f = *state;
	modbus_t *ctx = tcp_client(f->sim.tcp[0], 1, 500);

	check_aqt530(ctx, f->aqt530);
	client_free(ctx);
}

/* Every type and order decodes to a value within the point's min/max. */
static void check_types(modbus_t *ctx, const cg_profile_t *prof)
{
	for (size_t i = 0; i < prof->n_points; i++) {
		const cg_point_t *p = &prof->points[i];
		double v, slack;

		if (read_point(ctx, p, &v) != 0)
			fail_msg("reading %s: %s", p->name, modbus_strerror(errno));
		if (strcmp(p->name, "temperature") == 0) {
			/* -5..30 Cel in K, at 0.01 K resolution. */
			assert_within(p->name, v, 268.15 - 0.01, 303.15 + 0.01);
		} else if (strcmp(p->name, "mode") == 0) {
			/* States are raw values 0 .. n_states - 1. */
			assert_within(p->name, v, 0, (double)p->n_states - 1);
		} else if (strcmp(p->name, "alarmFault") == 0) {
			assert_within(p->name, v, 0, 0);
		} else if (p->table == CG_TABLE_COIL || p->table == CG_TABLE_DISCRETE ||
		           strcmp(p->name, "counterA") == 0) {
			assert_within(p->name, v, 0, 65535);
		} else {
			slack = p->type == CG_TYPE_F32 ? 1e-6 * fabs(p->max) : fabs(p->scale);
			assert_within(p->name, v, p->min - slack, p->max + slack);
		}
	}
}

static void test_every_type_and_order(void **state)
{
	fixture_t *f = *state;
	modbus_t *ctx = rtu_client(f->link, 7, 500);

	check_types(ctx, f->types);
	client_free(ctx);
	ctx = tcp_client(f->sim.tcp[0], 7, 500);
	check_types(ctx, f->types);
	client_free(ctx);
}

/* LD120 bits: fault inputs stay clear; the bay status is free or occupied. */
static void test_ld120_bits(void **state)
{
	fixture_t *f = *state;
	modbus_t *ctx = rtu_client(f->link, 6, 500);

	for (size_t i = 0; i < f->ld120->n_points; i++) {
		const cg_point_t *p = &f->ld120->points[i];
		double v;

		if (p->table != CG_TABLE_DISCRETE)
			continue;
		assert_int_equal(read_point(ctx, p, &v), 0);
		if (strstr(p->name, "Fault") || strstr(p->name, "Loop"))
			assert_within(p->name, v, 0, 0);
		else
			assert_within(p->name, v, 0, 1);
	}
	client_free(ctx);
}

/* Per-lane names ("occupancy1") get the range of their quantity. */
static void test_lane_numbered_names(void **state)
{
	fixture_t *f = *state;
	cg_profile_t *prof = load_profile("traffic-counter");
	modbus_t *ctx = tcp_client(f->sim.tcp[0], 9, 500);

	assert_non_null(prof);
	for (size_t i = 0; i < prof->n_points; i++) {
		const cg_point_t *p = &prof->points[i];
		double v;

		assert_int_equal(read_point(ctx, p, &v), 0);
		if (strncmp(p->name, "occupancy", 9) == 0)
			assert_within(p->name, v, 0, 0.6 + fabs(p->scale));
		else if (strncmp(p->name, "averageVehicleSpeed", 19) == 0)
			assert_within(p->name, v, 20 - fabs(p->scale), 70 + fabs(p->scale));
	}
	client_free(ctx);
	cg_profile_free(prof);
}

static const cg_point_t *point(const cg_profile_t *p, const char *name)
{
	for (size_t i = 0; i < p->n_points; i++)
		if (strcmp(p->points[i].name, name) == 0)
			return &p->points[i];
	fail_msg("no point %s in %s", name, p->name);
	return NULL;
}

/* Values move about once a second; counters only go up. */
static void test_values_change(void **state)
{
	fixture_t *f = *state;
	modbus_t *ctx = tcp_client(f->sim.tcp[0], 1, 500);
	modbus_t *bay = tcp_client(f->sim.tcp[0], 6, 500);
	const cg_point_t *count = point(f->ld120, "vehicleCount");
	double before[32], after, c0, c1;
	size_t changed = 0;

	assert_true(f->aqt530->n_points <= 32);
	for (size_t i = 0; i < f->aqt530->n_points; i++)
		assert_int_equal(read_point(ctx, &f->aqt530->points[i], &before[i]), 0);
	assert_int_equal(read_point(bay, count, &c0), 0);
	cg_sleep_ms(2300);
	for (size_t i = 0; i < f->aqt530->n_points; i++) {
		assert_int_equal(read_point(ctx, &f->aqt530->points[i], &after), 0);
		changed += after != before[i];
	}
	assert_int_equal(read_point(bay, count, &c1), 0);
	if (changed < 3)
		fail_msg("only %zu of %zu values changed in 2.3 s", changed, f->aqt530->n_points);
	/* u32 counter: the difference modulo 2^32 is the count in between. */
	double delta = fmod(c1 - c0 + 4294967296.0, 4294967296.0);

	assert_within("vehicleCount increase", delta, 1, 30);
	client_free(ctx);
	client_free(bay);
}

static void expect_error(modbus_t *ctx, int unit, int err)
{
	uint16_t regs[2];

	modbus_set_slave(ctx, unit);
	errno = 0;
	if (modbus_read_registers(ctx, 0, 2, regs) != -1)
		fail_msg("unit %d answered; expected \"%s\"", unit, modbus_strerror(err));
	if (errno != err)
		fail_msg("unit %d: \"%s\" (%d), expected \"%s\" (%d)", unit, modbus_strerror(errno),
		         errno, modbus_strerror(err), err);
}

static void expect_ok(modbus_t *ctx, int unit)
{
	uint16_t regs[2];

	modbus_set_slave(ctx, unit);
	if (modbus_read_registers(ctx, 0, 2, regs) != 2)
		fail_msg("unit %d: %s", unit, modbus_strerror(errno));
}

/* Faults shared by both transports, unit ids as set up in group_setup. */
static void check_common_faults(modbus_t *ctx)
{
	uint16_t regs[2];
	int64_t t0;

	expect_error(ctx, 2, ETIMEDOUT);
	expect_error(ctx, 10, ETIMEDOUT); /* no such unit */
	expect_ok(ctx, 1);
	/* Read-only sensors refuse writes; addresses beyond the map are illegal. */
	modbus_set_slave(ctx, 1);
	assert_int_equal(modbus_write_register(ctx, 0, 7), -1);
	assert_int_equal(errno, EMBXILFUN);
	assert_int_equal(modbus_read_registers(ctx, 12, 2, regs), -1);
	assert_int_equal(errno, EMBXILADD);
	assert_int_equal(modbus_read_input_registers(ctx, 0, 1, regs), -1);
	assert_int_equal(errno, EMBXILADD);

	/* slow=300: a 100 ms timeout expires; the late answer arrives on a
	 * client that stays connected and has to be flushed, as from hardware. */
	set_timeout(ctx, 100);
	expect_error(ctx, 5, ETIMEDOUT);
	cg_sleep_ms(400);
	modbus_flush(ctx);
	expect_ok(ctx, 1);
	set_timeout(ctx, 800);
	t0 = cg_mono_ms();
	expect_ok(ctx, 5);
	assert_in_range(cg_mono_ms() - t0, 280, 800);
	set_timeout(ctx, 200);
}

static void test_rtu_faults(void **state)
{
	fixture_t *f = *state;
	modbus_t *ctx = rtu_client(f->link, 1, 200);

	check_common_faults(ctx);
	expect_error(ctx, 3, EMBXSFAIL);
	expect_error(ctx, 4, EMBBADCRC);
	expect_ok(ctx, 1);
	client_free(ctx);

	/* A client that gives up and closes the line never sees the late
	 * answer: the next one on the line gets its own answer only. */
	ctx = rtu_client(f->link, 5, 100);
	expect_error(ctx, 5, ETIMEDOUT);
	client_free(ctx);
	cg_sleep_ms(400);
	ctx = rtu_client(f->link, 1, 300);
	expect_ok(ctx, 1);
	expect_ok(ctx, 1);
	client_free(ctx);
}

static void test_tcp_faults(void **state)
{
	fixture_t *f = *state;
	modbus_t *ctx = tcp_client(f->sim.tcp[0], 1, 200);

	check_common_faults(ctx);
	expect_error(ctx, 3, EMBXSBUSY);
	/* No CRC on TCP: the corruption is a byte count that does not match. */
	expect_error(ctx, 4, EMBBADDATA);
	expect_ok(ctx, 1);
	client_free(ctx);
}

/* Noise on the line is skipped; broadcasts and unknown units get no answer. */
static void test_rtu_noise_and_broadcast(void **state)
{
	fixture_t *f = *state;
	modbus_t *ctx = rtu_client(f->link, 1, 300);
	int fd = modbus_get_socket(ctx);
	static const uint8_t noise[] = {0x01, 0x03, 0x00, 0xff, 0xfe, 0x13, 0x37, 0x42, 0x55};
	const uint8_t broadcast[] = {0x00, 0x03, 0x00, 0x00, 0x00, 0x01};
	const uint8_t unknown[] = {0x0A, 0x03, 0x00, 0x00, 0x00, 0x01};
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	/* Noise right before a request, in the same burst. */
	assert_int_equal(write(fd, noise, sizeof(noise)), sizeof(noise));
	expect_ok(ctx, 1);
	/* Noise, then silence, then a request. */
	assert_int_equal(write(fd, noise, 5), 5);
	cg_sleep_ms(60);
	expect_ok(ctx, 1);

	assert_int_equal(modbus_send_raw_request(ctx, broadcast, sizeof(broadcast)), 8);
	assert_int_equal(poll(&pfd, 1, 200), 0);
	assert_int_equal(modbus_send_raw_request(ctx, unknown, sizeof(unknown)), 8);
	assert_int_equal(poll(&pfd, 1, 200), 0);
	expect_ok(ctx, 1);
	client_free(ctx);
}

/* flaky=50,silent: some requests are answered, some are not. */
static void test_flaky(void **state)
{
	fixture_t *f = *state;
	modbus_t *ctx = tcp_client(f->sim.tcp[0], 8, 60);
	uint16_t regs[1];
	int ok = 0;

	for (int i = 0; i < 30; i++)
		ok += modbus_read_registers(ctx, 0, 1, regs) == 1;
	assert_in_range(ok, 4, 26);
	client_free(ctx);
}

/* SIGTERM ends the simulator with 0 and removes its symlink. Runs last on
 * the shared simulator. */
static void test_sigterm(void **state)
{
	fixture_t *f = *state;
	struct stat st;
	int status;

	status = sim_stop(&f->sim);
	f->running = false;
	assert_true(status != -1);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(lstat(f->link, &st), -1);
	assert_int_equal(errno, ENOENT);
}

/* after= and until= bound a fault in time: a slave goes silent and comes back. */
static void test_fault_window(void **state)
{
	const char *const args[] = {"--profile-dir",
	                            PROFILES,
	                            "--tcp",
	                            "0",
	                            "--slave",
	                            "1:aqt530:silent,until=1.5",
	                            "--slave",
	                            "2:aqt530:exception,after=1.5",
	                            NULL};
	sim_proc_t sim;
	modbus_t *ctx;
	int status;
	int64_t wait;

	(void)state;
	assert_int_equal(sim_start(args, &sim, &status), 0);
	ctx = tcp_client(sim.tcp[0], 1, 200);
	expect_error(ctx, 1, ETIMEDOUT);
	expect_ok(ctx, 2);
	wait = sim.ready_ms + 1800 - cg_mono_ms();
	if (wait > 0)
		cg_sleep_ms(wait);
	expect_ok(ctx, 1);
	expect_error(ctx, 2, EMBXSFAIL);
	client_free(ctx);
	status = sim_stop(&sim);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* force=POINT:VALUE parses into the slave's forces; a bad one says why. */
static void test_force_parse(void **state)
{
	static const char *const bad[] = {
	    "force=meterStatus",
	    "force=:3",
	    "force=meterStatus:",
	    "force=meterStatus:x",
	    "force=aVeryLongPointNameOfThirtyTwoChars:1",
	    "force=meterStatus:1,after=5,until=2",
	    ("force=a:1,force=b:1,force=c:1,force=d:1,force=e:1,force=f:1,force=g:1,force=h:1,"
	     "force=i:1")};
	sim_fault_t f;
	char err[256];

	(void)state;
	assert_int_equal(sim_fault_parse("force=meterStatus:0x13,force=co2:40000,after=10,until=20",
	                                 &f, err, sizeof(err)),
	                 0);
	assert_int_equal(f.n_force, 2);
	assert_string_equal(f.force[0].point, "meterStatus");
	assert_true(f.force[0].value == 19);
	assert_string_equal(f.force[1].point, "co2");
	assert_true(f.force[1].value == 40000);
	assert_true(f.after_s == 10 && f.until_s == 20);
	/* force alone is a fault: the window applies to it. */
	assert_int_equal(sim_fault_parse("force=x:-1.5", &f, err, sizeof(err)), 0);
	assert_true(f.force[0].value == -1.5);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (sim_fault_parse(bad[i], &f, err, sizeof(err)) != CG_EINVAL || !err[0])
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

/* A forced point holds its raw value within the window only, and a status
 * register is all clear (0) otherwise; a force the profile cannot take is
 * refused before the slave is built. Time is the simulator's own t. */
static void test_force_window(void **state)
{
	const char *const dirs[] = {PROFILES, NULL};
	cg_profile_t *prof = NULL;
	cg_diag_t d = {0};
	sim_slave_t *s = NULL;
	sim_fault_t f;
	char err[256];
	uint16_t *in;

	(void)state;
	assert_int_equal(cg_profile_load(CO2_STATUS, NULL, dirs, &prof, &d), 0);
	assert_int_equal(sim_fault_parse("force=nope:1", &f, err, sizeof(err)), 0);
	assert_int_equal(sim_fault_check(&f, prof, err, sizeof(err)), CG_EINVAL);
	assert_string_equal(err, "force=nope: profile co2-status has no point \"nope\"");
	assert_int_equal(sim_slave_new(1, prof, &f, 1, &s), CG_EINVAL);
	assert_null(s);
	assert_int_equal(sim_fault_parse("force=meterStatus:70000", &f, err, sizeof(err)), 0);
	assert_int_equal(sim_fault_check(&f, prof, err, sizeof(err)), CG_EINVAL);
	assert_string_equal(err, "force=meterStatus:70000: not a raw value of a u16 point");
	assert_int_equal(sim_fault_parse("force=meterStatus:2.5", &f, err, sizeof(err)), 0);
	assert_int_equal(sim_fault_check(&f, prof, err, sizeof(err)), CG_EINVAL);

	assert_int_equal(sim_fault_parse("force=meterStatus:0x13,force=co2:40000,after=10,until=20",
	                                 &f, err, sizeof(err)),
	                 0);
	assert_int_equal(sim_fault_check(&f, prof, err, sizeof(err)), 0);
	assert_int_equal(sim_slave_new(1, prof, &f, 1, &s), 0);
	in = sim_slave_mapping(s)->tab_input_registers;
	sim_slave_update(s, 5);
	assert_int_equal(in[0], 0);
	assert_in_range(in[3], 400, 1200);
	/* Requests in the window are not faulted otherwise: force is no answer fault. */
	assert_false(sim_slave_decide(s, 15, 4).silent);
	sim_slave_update(s, 10);
	assert_int_equal(in[0], 0x13);
	assert_int_equal(in[3], 40000);
	sim_slave_update(s, 19.9);
	assert_int_equal(in[0], 0x13);
	sim_slave_update(s, 20);
	assert_int_equal(in[0], 0);
	assert_in_range(in[3], 400, 1200);
	sim_slave_free(s);
	cg_diag_free(&d);
}

/* citygate-sim serves a forced value, and refuses a force its profile cannot take. */
static void test_force_served(void **state)
{
	const char *const args[] = {"--profile-dir",
	                            PROFILES,
	                            "--tcp",
	                            "0",
	                            "--slave",
	                            "1:" CO2_STATUS ":force=meterStatus:6",
	                            "--slave",
	                            "2:" CO2_STATUS,
	                            NULL};
	const char *const refused[] = {"--tcp", "0", "--slave", "1:" CO2_STATUS ":force=co2x:1",
	                               NULL};
	sim_proc_t sim;
	modbus_t *ctx;
	uint16_t reg;
	int status;

	(void)state;
	assert_int_equal(sim_start(args, &sim, &status), 0);
	ctx = tcp_client(sim.tcp[0], 1, 500);
	assert_int_equal(modbus_read_input_registers(ctx, 0, 1, &reg), 1);
	assert_int_equal(reg, 6);
	modbus_set_slave(ctx, 2);
	assert_int_equal(modbus_read_input_registers(ctx, 0, 1, &reg), 1);
	assert_int_equal(reg, 0);
	client_free(ctx);
	status = sim_stop(&sim);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(sim_refused(refused), 2);
}

/* --baud paces answers at the line rate: 13 registers at 9600 baud take
 * about 50 ms of bus time (8 + 31 bytes and two gaps, 11 bits each). */
static void test_baud_pacing(void **state)
{
	const char *const args[] = {"--profile-dir", PROFILES,  "--rtu",    "--baud",
	                            "9600",          "--slave", "1:aqt530", NULL};
	sim_proc_t sim;
	modbus_t *ctx;
	uint16_t regs[13];
	int status;
	int64_t t0;

	(void)state;
	assert_int_equal(sim_start(args, &sim, &status), 0);
	assert_int_equal(sim.n_rtu, 1);
	/* Without a link name the pty's own path is printed twice. */
	assert_string_equal(sim.rtu[0], sim.pts[0]);
	ctx = rtu_client(sim.pts[0], 1, 500);
	t0 = cg_mono_ms();
	assert_int_equal(modbus_read_registers(ctx, 0, 13, regs), 13);
	assert_in_range(cg_mono_ms() - t0, 45, 500);
	client_free(ctx);
	status = sim_stop(&sim);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_refuses_bad_arguments(void **state)
{
	fixture_t *f = *state;
	char plain[PATH_MAX];
	struct stat st;
	FILE *fp;

	{
		const char *const a[] = {NULL};
		assert_int_equal(sim_refused(a), 2);
	}
	{
		const char *const a[] = {"--slave", "1:aqt530", "--tcp", "0", NULL};
		assert_int_equal(sim_refused(a), 2);
	}
	{
		const char *const a[] = {"--rtu", "--slave", "0:aqt530", NULL};
		assert_int_equal(sim_refused(a), 2);
	}
	{
		const char *const a[] = {"--tcp", "0", "--slave", "1:aqt530:bogus", NULL};
		assert_int_equal(sim_refused(a), 2);
	}
	{
		const char *const a[] = {"--tcp", "0", "--slave", "1:aqt530:flaky=50", NULL};
		assert_int_equal(sim_refused(a), 2);
	}
	{
		const char *const a[] = {"--tcp", "0", "--slave", "1:aqt530:slow=-1", NULL};
		assert_int_equal(sim_refused(a), 2);
	}
	{
		const char *const a[] = {"--tcp", "0", "--slave", "1:aqt530:silent,after=5,until=2",
		                         NULL};
		assert_int_equal(sim_refused(a), 2);
	}
	{
		const char *const a[] = {"--tcp",   "0",       "--slave", "1:aqt530",
		                         "--slave", "1:ld120", NULL};
		assert_int_equal(sim_refused(a), 2);
	}
	{
		const char *const a[] = {"--tcp", "70000", NULL};
		assert_int_equal(sim_refused(a), 2);
	}
	{
		const char *const a[] = {"--tcp", "0", "--baud", "9600", NULL};
		assert_int_equal(sim_refused(a), 2);
	}
	{
		const char *const a[] = {"--tcp", "0", "--slave", "1:no-such-profile", NULL};
		assert_int_equal(sim_refused(a), 1);
	}
	/* A link name that is a regular file is not clobbered. */
	snprintf(plain, sizeof(plain), "%s/plain-file", f->dir);
	fp = fopen(plain, "w");
	assert_non_null(fp);
	fclose(fp);
	{
		const char *const a[] = {"--rtu", plain, "--slave", "1:aqt530", NULL};
		assert_int_equal(sim_refused(a), 1);
	}
	assert_int_equal(lstat(plain, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ready_lines),
	    cmocka_unit_test(test_rtu_aqt530_values),
	    cmocka_unit_test(test_tcp_aqt530_values),
	    cmocka_unit_test(test_every_type_and_order),
	    cmocka_unit_test(test_lane_numbered_names),
	    cmocka_unit_test(test_ld120_bits),
	    cmocka_unit_test(test_values_change),
	    cmocka_unit_test(test_rtu_faults),
	    cmocka_unit_test(test_tcp_faults),
	    cmocka_unit_test(test_rtu_noise_and_broadcast),
	    cmocka_unit_test(test_flaky),
	    cmocka_unit_test(test_sigterm),
	    cmocka_unit_test(test_fault_window),
	    cmocka_unit_test(test_force_parse),
	    cmocka_unit_test(test_force_window),
	    cmocka_unit_test(test_force_served),
	    cmocka_unit_test(test_baud_pacing),
	    cmocka_unit_test(test_refuses_bad_arguments),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
