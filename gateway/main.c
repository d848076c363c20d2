/* citygate's command line: run, --check, --once, --status, --quarantine, --scan, --version,
 * --help. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/build_config.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "gateway/config.h"
#include "gateway/gateway.h"
#include "gateway/once.h"
#include "gateway/scan.h"
#include "store/outbox.h"
#include "uplink/mqtt_text.h"

static cg_signals_t signals_seen;

/* Signal handlers only set flags; the main loop does the work. */
static void on_stop(int sig)
{
	signals_seen.stop = 1;
}

static void on_reload(int sig)
{
	signals_seen.reload = 1;
}

/* The help text, on stdout for --help and on stderr after a usage error. */
static void usage(bool to_stdout)
{
	static const char *const lines[] = {
		"Usage: citygate -c FILE            run the gateway in the foreground",
		"       citygate --check -c FILE    validate the config and its profiles",
		"       citygate --once -c FILE     poll every sensor once, print NDJSON",
		"       citygate --status -c FILE   print the outbox state",
		"       citygate --quarantine list|retry|drop [--seq N] -c FILE",
		"                                   readings set aside: list them (NDJSON),",
		"                                   or have the gateway resend or drop them",
		"       citygate --scan DEVICE|HOST:PORT [--units A-B] [--baud LIST]",
		"                [--framing LIST] [--all-settings] [--timeout-ms MS]",
		"                [--profile-dir DIR]...",
		"                                   find the Modbus devices on a line, print a config",
		"                                   (stops at the first line setting that answers;",
		"                                   --all-settings tries every one)",
		"       citygate --version | --help",
		"Options: -v, --verbose  also log debug messages",
		"Exit status: 0 ok, 1 invalid config or failure, 2 usage error,",
		"             3 --once: a sensor did not answer; --scan: 1 when nothing answered",
	};
	char drivers[256];
	size_t o = (size_t)snprintf(drivers, sizeof(drivers), "Drivers:");

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (to_stdout)
			cg_out(lines[i]);
		else
			cg_err("%s", lines[i]);
	}
	for (size_t i = 0; cg_drivers[i] && o < sizeof(drivers); i++)
		o += (size_t)snprintf(drivers + o, sizeof(drivers) - o, " %s", cg_drivers[i]->name);
	if (to_stdout)
		cg_out(drivers);
	else
		cg_err("%s", drivers);
}

/* Loads the config. Every problem is one line "FILE: /pointer: message":
 * on stdout for --check, in the log (as errors) otherwise. */
static cg_config_t *load(const char *path, bool check)
{
	cg_diag_t diag = {0};
	cg_config_t *cfg = NULL;

	cg_config_load(path, &cfg, &diag);
	for (size_t i = 0; i < diag.n; i++) {
		if (check)
			cg_out(diag.lines[i]);
		else
			cg_log(CG_LOG_ERR, "%s", diag.lines[i]);
	}
	cg_diag_free(&diag);
	return cfg;
}

/* --status: reads the outbox through a read-only connection. The rows' times are on
 * the daemon's store clock, which this process cannot read: the oldest row's age is
 * given as of the newest row, which while the daemon runs is a moment ago. */
static int print_status(const cg_config_t *cfg)
{
	cg_outbox_stats_t st;
	char line[512];
	int rc = cg_outbox_peek(cfg->store.path, &st);

	if (rc < 0) {
		cg_err("citygate: %s: %s", cfg->store.path, cg_strerror(rc));
		return 1;
	}
	snprintf(line, sizeof(line),
	         "{\"store\":\"%s\",\"rows\":%lld,\"bytes\":%lld,\"oldest_age_s\":%lld,"
	         "\"next_seq\":%lld,\"dropped\":%lld,\"quarantined\":%lld}",
	         cfg->store.path, (long long)st.rows, (long long)st.bytes,
	         (long long)(st.rows ? (st.newest_ms - st.oldest_ms) / 1000 : 0),
	         (long long)st.next_seq, (long long)st.dropped, (long long)st.quarantined);
	cg_out(line);
	return 0;
}

/* Whether a bus's "baud" may be v (the config's list), so that the config
 * --scan prints passes --check. */
static bool baud_known(long v)
{
	static const long bauds[] = {1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200};

	for (size_t i = 0; i < sizeof(bauds) / sizeof(bauds[0]); i++)
		if (bauds[i] == v)
			return true;
	return false;
}

/* Parses a comma-separated list of baud rates into out (at most max). */
static size_t parse_bauds(const char *s, long *out, size_t max)
{
	size_t n = 0;
	char *end;

	while (*s && n < max) {
		long v = strtol(s, &end, 10);

		if (end == s || (*end && *end != ',') || !baud_known(v))
			return 0;
		out[n++] = v;
		s = *end ? end + 1 : end;
	}
	return *s ? 0 : n;
}

/* Parses a comma-separated list of framings ("8N1,8E1") into out. */
static size_t parse_framings(char *s, const char **out, size_t max)
{
	size_t n = 0;

	for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ",")) {
		if (strlen(tok) != 3 || (tok[0] != '7' && tok[0] != '8') || !strchr("NEO", tok[1]) ||
		    (tok[2] != '1' && tok[2] != '2'))
			return 0;
		out[n++] = tok;
	}
	return n;
}

/* --scan: the line settings most devices ship with, unless narrowed; the
 * Modbus serial line specification's default framing (8E1) first, then the
 * others it allows (8O1, and 8N2: no parity takes two stop bits), then 8N1,
 * which many devices use all the same. */
static int scan(const char *target, const char *units, const char *bauds, char *framings,
                bool all_settings, const char *timeout, const char **dirs, size_t n_dirs)
{
	static const long default_bauds[] = {9600, 19200, 38400, 115200, 4800};
	static const char *const default_framings[] = {"8E1", "8O1", "8N2", "8N1"};
	long baud_list[16];
	const char *framing_list[8];
	cg_scan_opts_t o = {.target = target, .unit_lo = 1, .unit_hi = 247, .timeout_ms = 200,
	                    .bauds = default_bauds, .n_bauds = 5, .framings = default_framings,
	                    .n_framings = 4, .all_settings = all_settings, .profile_dirs = dirs};
	struct sigaction sa = {.sa_handler = on_stop};
	char end;

	if (units && (sscanf(units, "%d-%d%c", &o.unit_lo, &o.unit_hi, &end) != 2 ||
	              o.unit_lo < 0 || o.unit_hi > 255 || o.unit_lo > o.unit_hi)) {
		cg_err("citygate: --units: \"%s\" is not a range like 1-247 (0-255)", units);
		return 2;
	}
	if (bauds && !(o.n_bauds = parse_bauds(bauds, baud_list, 16))) {
		cg_err("citygate: --baud: \"%s\" is not a list of 1200, 2400, 4800, 9600, 19200, "
		       "38400, 57600, 115200", bauds);
		return 2;
	}
	if (bauds)
		o.bauds = baud_list;
	if (framings && !(o.n_framings = parse_framings(framings, framing_list, 8))) {
		cg_err("citygate: --framing: \"%s\" is not a list like 8N1,8E1", framings);
		return 2;
	}
	if (framings)
		o.framings = framing_list;
	if (timeout && (sscanf(timeout, "%d%c", &o.timeout_ms, &end) != 1 || o.timeout_ms < 10 ||
	                o.timeout_ms > 10000)) {
		cg_err("citygate: --timeout-ms: \"%s\" is not 10-10000", timeout);
		return 2;
	}
	o.n_user_dirs = n_dirs;
	dirs[n_dirs++] = CG_PROFILE_DIR_INSTALLED;
	dirs[n_dirs++] = CG_PROFILE_DIR_SOURCE;
	dirs[n_dirs] = NULL;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	return cg_scan_run(&o, &signals_seen.stop);
}

/* Appends s (len bytes) as a JSON string. Text that is not valid UTF-8 (a damaged topic)
 * has each byte above 0x7f written as \u00XX, so the line stays valid JSON and every byte
 * can still be read off it. */
static void json_bytes(cg_buf_t *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";

	if (memchr(s, '\0', len) == NULL && !cg_mqtt_text_problem(s, len)) {
		cg_buf_json_string(b, s);
		return;
	}
	cg_buf_puts(b, "\"");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			cg_buf_printf(b, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
		else
			cg_buf_append(b, (const char *)&c, 1);
	}
	cg_buf_puts(b, "\"");
}

/* --quarantine list: one JSON line per reading in quarantine, oldest seq first: its
 * seq, when it was made and set aside, why, its topic, its payload (when it is text)
 * and its size, and what the operator asked for that the gateway has not done yet. */
static int quarantine_list(const cg_config_t *cfg)
{
	cg_outbox_dead_t *d = NULL;
	size_t n = 0;
	char ts[32];
	int rc = cg_outbox_quarantine_list(cfg->store.path, &d, &n);

	if (rc < 0) {
		cg_err("citygate: %s: %s", cfg->store.path, cg_strerror(rc));
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		cg_buf_t b = {0};

		cg_buf_printf(&b, "{\"seq\":%lld", (long long)d[i].seq);
		cg_rfc3339(d[i].quarantined_ms, ts, sizeof(ts));
		cg_buf_printf(&b, ",\"quarantined\":\"%s\",\"created\":", ts);
		if (d[i].created_ms) {
			cg_rfc3339(d[i].created_ms, ts, sizeof(ts));
			cg_buf_printf(&b, "\"%s\"", ts);
		} else {
			cg_buf_puts(&b, "null");
		}
		cg_buf_puts(&b, ",\"reason\":");
		json_bytes(&b, d[i].reason, strlen(d[i].reason));
		cg_buf_puts(&b, ",\"topic\":");
		if (d[i].topic)
			json_bytes(&b, d[i].topic, strlen(d[i].topic));
		else
			cg_buf_puts(&b, "null");
		cg_buf_puts(&b, ",\"payload\":");
		if (d[i].payload)
			json_bytes(&b, d[i].payload, d[i].len);
		else
			cg_buf_puts(&b, "null");
		cg_buf_printf(&b, ",\"payload_bytes\":%zu,\"action\":%s}", d[i].len,
		              d[i].action == CG_OUTBOX_RETRY  ? "\"retry\""
		              : d[i].action == CG_OUTBOX_DROP ? "\"drop\""
		                                              : "null");
		if (cg_buf_failed(&b)) {
			cg_buf_free(&b);
			cg_outbox_dead_free(d, n);
			cg_err("citygate: out of memory");
			return 1;
		}
		cg_out(b.data);
		cg_buf_free(&b);
	}
	cg_outbox_dead_free(d, n);
	return 0;
}

/* --quarantine retry|drop: marks the readings (seq, or all when 0) for the gateway,
 * which carries the marks out within a second when it runs, or at its next start. */
static int quarantine_mark(const cg_config_t *cfg, int action, int64_t seq)
{
	size_t marked = 0;
	int rc = cg_outbox_quarantine_mark(cfg->store.path, seq, action, &marked);

	if (rc < 0) {
		cg_err("citygate: %s: %s", cfg->store.path, cg_strerror(rc));
		return 1;
	}
	if (seq > 0 && marked == 0) {
		cg_err("citygate: seq %lld is not in quarantine", (long long)seq);
		return 1;
	}
	cg_err("citygate: %zu reading%s marked to %s; the running gateway does it within a "
	       "second (or at its next start)",
	       marked, marked == 1 ? "" : "s", action == CG_OUTBOX_RETRY ? "send again" : "drop");
	return 0;
}

/* Runs the daemon until SIGTERM or SIGINT; SIGHUP reloads the config. */
static int run(cg_config_t *cfg)
{
	struct sigaction sa;
	cg_gateway_t *g;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_reload;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	if (cg_gateway_new(cfg, &g) < 0)
		return 1;
	rc = cg_gateway_run(g, &signals_seen);
	cg_gateway_free(g);
	return rc < 0 ? 1 : 0;
}

/* What the command line asks for. */
typedef struct cli {
	enum { MODE_RUN, MODE_CHECK, MODE_ONCE, MODE_STATUS, MODE_QUARANTINE } mode;
	const char *path;
	const char *what; /* --quarantine list|retry|drop */
	long long seq;    /* --seq, 0 when not given */
	/* --scan and its options */
	const char *scan_target, *units, *bauds, *timeout;
	char *framings;
	bool all_settings;
	const char *dirs[19]; /* --profile-dir ones, room for the two defaults and NULL */
	size_t n_dirs;
} cli_t;

/* A usage error: the message, the help on stderr, exit status 2. */
static int usage_error(const char *message)
{
	cg_err("citygate: %s", message);
	usage(false);
	return 2;
}

/* Reads the options into c. Returns -1 to go on, or the exit status when
 * done already (--version, --help, a usage error). */
static int parse_args(int argc, char **argv, cli_t *c)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'k'},
	    {"once", no_argument, NULL, 'o'},         {"status", no_argument, NULL, 's'},
	    {"verbose", no_argument, NULL, 'v'},      {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},         {"scan", required_argument, NULL, 'S'},
	    {"units", required_argument, NULL, 'u'},  {"baud", required_argument, NULL, 'b'},
	    {"framing", required_argument, NULL, 'f'}, {"timeout-ms", required_argument, NULL, 't'},
	    {"all-settings", no_argument, NULL, 'a'},
	    {"profile-dir", required_argument, NULL, 'p'},
	    {"quarantine", required_argument, NULL, 'q'}, {"seq", required_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0},
	};
	char *end;
	int opt;

	while ((opt = getopt_long(argc, argv, "c:vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': c->path = optarg; break;
		case 'k': c->mode = MODE_CHECK; break;
		case 'o': c->mode = MODE_ONCE; break;
		case 's': c->mode = MODE_STATUS; break;
		case 'q':
			c->mode = MODE_QUARANTINE;
			c->what = optarg;
			break;
		case 'n':
			c->seq = strtoll(optarg, &end, 10);
			if (*optarg == '\0' || *end || c->seq < 1)
				return usage_error("--seq needs a seq, a number from 1");
			break;
		case 'v': cg_log_set_level(CG_LOG_DEBUG); break;
		case 'V': cg_out("citygate " CG_VERSION); return 0;
		case 'h': usage(true); return 0;
		case 'S': c->scan_target = optarg; break;
		case 'u': c->units = optarg; break;
		case 'b': c->bauds = optarg; break;
		case 'f': c->framings = optarg; break;
		case 'a': c->all_settings = true; break;
		case 't': c->timeout = optarg; break;
		case 'p':
			if (c->n_dirs < 16)
				c->dirs[c->n_dirs++] = optarg;
			break;
		default: usage(false); return 2;
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument");
	return -1;
}

/* The rules between options that getopt cannot see. -1 when they hold. */
static int check_args(const cli_t *c)
{
	if (c->scan_target || c->units || c->bauds || c->framings || c->all_settings ||
	    c->timeout || c->n_dirs)
		return usage_error("--units, --baud, --framing, --all-settings, --timeout-ms and "
		                   "--profile-dir go with --scan, and --scan takes no -c");
	if (!c->path)
		return usage_error("-c FILE is required");
	if (c->mode == MODE_QUARANTINE && strcmp(c->what, "list") != 0 &&
	    strcmp(c->what, "retry") != 0 && strcmp(c->what, "drop") != 0)
		return usage_error("--quarantine takes list, retry or drop");
	if (c->seq && (c->mode != MODE_QUARANTINE || strcmp(c->what, "list") == 0))
		return usage_error("--seq goes with --quarantine retry or drop");
	return -1;
}

int main(int argc, char **argv)
{
	cli_t c = {.mode = MODE_RUN};
	cg_config_t *cfg;
	int rc = parse_args(argc, argv, &c);

	if (rc >= 0)
		return rc;
	if (c.scan_target && !c.path)
		return scan(c.scan_target, c.units, c.bauds, c.framings, c.all_settings, c.timeout,
		            c.dirs, c.n_dirs);
	rc = check_args(&c);
	if (rc >= 0)
		return rc;

	cfg = load(c.path, c.mode == MODE_CHECK);
	if (!cfg)
		return 1;
	switch (c.mode) {
	case MODE_CHECK: rc = 0; break;
	case MODE_ONCE: rc = cg_once_run(cfg); break;
	case MODE_STATUS: rc = print_status(cfg); break;
	case MODE_QUARANTINE:
		rc = strcmp(c.what, "list") == 0    ? quarantine_list(cfg)
		     : strcmp(c.what, "retry") == 0 ? quarantine_mark(cfg, CG_OUTBOX_RETRY, c.seq)
		                                    : quarantine_mark(cfg, CG_OUTBOX_DROP, c.seq);
		break;
	default:
		rc = run(cfg);
		cfg = NULL; /* the gateway took it */
		break;
	}
	cg_config_free(cfg);
	return rc;
}
