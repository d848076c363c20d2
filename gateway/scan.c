/* citygate --scan: finds who answers on a Modbus line, at which line settings, and which
 * shipped profile fits each device; prints a config that passes --check. */
#include "gateway/scan.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/diag.h"
#include "base/error.h"
#include "base/log.h"
#include "drivers/modbus/decode.h"
#include "drivers/modbus/profile.h"
#include "drivers/transport.h"

/* One device that answered: where, and the profile that fits it best. */
typedef struct found {
	long baud;       /* 0 on TCP */
	char framing[4]; /* "" on TCP */
	int unit;
	const cg_profile_t *profile; /* NULL when none fits */
} found_t;

typedef struct scan {
	const cg_scan_opts_t *o;
	volatile sig_atomic_t *stop;
	char host[256];
	int port; /* > 0: Modbus TCP */
	cg_profile_t **profiles;
	size_t n_profiles;
	found_t *found;
	size_t n_found;
} scan_t;

#define PROFILE_REF_MAX 256

/* The ending that makes a count's noun agree with it: "1 device", "2 devices". */
static const char *plural(size_t n)
{
	return n == 1 ? "" : "s";
}

/* The name a config gives to find p: its file's name without ".json", which
 * is what the daemon looks up in the profile folders (the profile's own
 * "name" may differ). */
static const char *profile_ref(const cg_profile_t *p, char ref[static PROFILE_REF_MAX])
{
	const char *base = strrchr(p->file, '/');
	size_t len;

	base = base ? base + 1 : p->file;
	len = strlen(base);
	if (len > 5 && strcmp(base + len - 5, ".json") == 0)
		len -= 5;
	snprintf(ref, PROFILE_REF_MAX, "%.*s", (int)len, base);
	return ref;
}

/* How well a profile fits a device: see cg_scan_run(). */
typedef struct fit {
	bool all_answer;
	size_t out_of_range;
	unsigned tables; /* bit per cg_table_t the profile reads */
	size_t answered;
	unsigned extent;
} fit_t;

static bool is_exception(int err)
{
	return err >= EMBXILFUN && err <= EMBXGTAR;
}

/* Reads one point's registers or bit; 0, CG_EEXCEPTION or CG_ETIMEDOUT. */
static int read_point(modbus_t *mb, const cg_point_t *p, uint16_t *regs, uint8_t *bit)
{
	int n = p->table == CG_TABLE_COIL || p->table == CG_TABLE_DISCRETE
	            ? 1
	            : (int)cg_type_registers(p->type);
	int rc;

	switch (p->table) {
	case CG_TABLE_COIL: rc = modbus_read_bits(mb, p->address, 1, bit); break;
	case CG_TABLE_DISCRETE: rc = modbus_read_input_bits(mb, p->address, 1, bit); break;
	case CG_TABLE_HOLDING: rc = modbus_read_registers(mb, p->address, n, regs); break;
	default: rc = modbus_read_input_registers(mb, p->address, n, regs); break;
	}
	if (rc == n)
		return CG_OK;
	return rc < 0 && is_exception(errno) ? CG_EEXCEPTION : CG_ETIMEDOUT;
}

/* Reads every point of p from the device mb talks to. */
static fit_t fit_profile(modbus_t *mb, const cg_profile_t *p)
{
	fit_t f = {.all_answer = true};

	for (size_t i = 0; i < p->n_points; i++) {
		const cg_point_t *pt = &p->points[i];
		uint16_t regs[4] = {0};
		uint8_t bit = 0;
		double raw, v;

		if (read_point(mb, pt, regs, &bit) < 0) {
			f.all_answer = false;
			return f;
		}
		f.answered++;
		f.tables |= 1u << pt->table;
		if (pt->address + 1u > f.extent)
			f.extent = pt->address + 1u;
		if (pt->table == CG_TABLE_COIL || pt->table == CG_TABLE_DISCRETE) {
			raw = bit;
		} else if (cg_decode_registers(regs, pt->type, pt->order, &raw) < 0) {
			f.out_of_range++;
			continue;
		}
		if (pt->n_states) {
			if (raw < 0 || raw >= (double)pt->n_states)
				f.out_of_range++;
			continue;
		}
		v = cg_point_value(pt, raw);
		if ((pt->has_min && v < pt->min) || (pt->has_max && v > pt->max))
			f.out_of_range++;
	}
	return f;
}

/* A profile that reads more of the device is the more specific one: fewer
 * values outside its ranges first, then more of the device's tables (a
 * loop detector's discrete inputs beside its holding registers), then more
 * registers, then a deeper address. */
static bool fits_better(const fit_t *a, const fit_t *b)
{
	int ta = __builtin_popcount(a->tables), tb = __builtin_popcount(b->tables);

	if (a->out_of_range != b->out_of_range)
		return a->out_of_range < b->out_of_range;
	if (ta != tb)
		return ta > tb;
	if (a->answered != b->answered)
		return a->answered > b->answered;
	return a->extent > b->extent;
}

/* The profile that fits unit best, logging every profile whose points all
 * answered with its score, and then the one chosen; NULL when none. */
static const cg_profile_t *best_profile(scan_t *s, modbus_t *mb, int unit)
{
	const cg_profile_t *best = NULL;
	fit_t best_fit = {0};
	char ref[PROFILE_REF_MAX];

	modbus_set_slave(mb, unit);
	for (size_t i = 0; i < s->n_profiles; i++) {
		fit_t f = fit_profile(mb, s->profiles[i]);

		if (!f.all_answer)
			continue;
		/* Only a score: a profile whose points all answer need not be the
		 * device's, so the choice gets a line of its own below. */
		cg_err("scan:   unit %d: profile %s: %zu point%s answer%s, %zu outside its ranges",
		       unit, profile_ref(s->profiles[i], ref), f.answered, plural(f.answered),
		       f.answered == 1 ? "s" : "", f.out_of_range);
		if (!best || fits_better(&f, &best_fit)) {
			best = s->profiles[i];
			best_fit = f;
		}
	}
	if (best)
		cg_err("scan:   unit %d: chosen profile %s", unit, profile_ref(best, ref));
	return best;
}

/* Whether unit answers a read of holding register 0: any answer, an
 * exception included, means a device is there. */
static bool probe(modbus_t *mb, int unit)
{
	uint16_t reg;

	/* libmodbus refuses 248-255 on a serial line, where they are reserved. */
	if (modbus_set_slave(mb, unit) < 0)
		return false;
	modbus_flush(mb);
	return modbus_read_registers(mb, 0, 1, &reg) == 1 || is_exception(errno);
}

/* Opens the target at one line setting (framing NULL on TCP). */
static modbus_t *open_line(const scan_t *s, long baud, const char *framing)
{
	uint32_t sec = (uint32_t)(s->o->timeout_ms / 1000);
	uint32_t usec = (uint32_t)(s->o->timeout_ms % 1000) * 1000;
	modbus_t *mb = s->port ? cg_modbus_new_tcp(s->host, s->port)
	                       : modbus_new_rtu(s->o->target, (int)baud, framing[1],
	                                        framing[0] - '0', framing[2] - '0');

	if (!mb)
		return NULL;
	modbus_set_response_timeout(mb, sec, usec);
	modbus_set_byte_timeout(mb, sec, usec);
	if (modbus_connect(mb) < 0) {
		modbus_free(mb);
		return NULL;
	}
	return mb;
}

static void close_line(modbus_t *mb)
{
	modbus_close(mb);
	modbus_free(mb);
}

static int add_found(scan_t *s, long baud, const char *framing, int unit,
                     const cg_profile_t *profile)
{
	found_t *f = realloc(s->found, (s->n_found + 1) * sizeof(*f));

	if (!f)
		return CG_ENOMEM;
	s->found = f;
	f = &s->found[s->n_found++];
	f->baud = baud;
	snprintf(f->framing, sizeof(f->framing), "%s", framing ? framing : "");
	f->unit = unit;
	f->profile = profile;
	return CG_OK;
}

/* The device already found as unit at this baud, at another framing, or NULL. */
static const found_t *found_at_baud(const scan_t *s, long baud, int unit)
{
	for (size_t i = 0; i < s->n_found; i++)
		if (s->found[i].unit == unit && s->found[i].baud == baud)
			return &s->found[i];
	return NULL;
}

/* Probes every unit at one line setting, then fits profiles to those found;
 * *answered tells whether any unit answered, one found before included. */
static int scan_line(scan_t *s, long baud, const char *framing, bool *answered)
{
	modbus_t *mb = open_line(s, baud, framing);
	int units[256], n = 0, rc = CG_OK;

	if (!mb) {
		cg_err("scan: cannot open %s: %s", s->o->target, modbus_strerror(errno));
		return CG_EIO;
	}
	if (s->port)
		cg_err("scan: %s: unit ids %d-%d", s->o->target, s->o->unit_lo, s->o->unit_hi);
	else
		cg_err("scan: %s at %ld %s: unit ids %d-%d", s->o->target, baud, framing,
		       s->o->unit_lo, s->o->unit_hi);
	for (int u = s->o->unit_lo; u <= s->o->unit_hi && !*s->stop; u++) {
		const found_t *seen = found_at_baud(s, baud, u);

		if (!probe(mb, u))
			continue;
		*answered = true;
		if (seen) {
			/* A real device does not answer a frame with the wrong parity
			 * or data bits; a pty, or a converter that does not check
			 * them, passes any. The first framing tried stays. */
			cg_err("scan:   unit %d answers at %s too: the line does not check the framing;"
			       " keeping %s",
			       u, framing, seen->framing);
			continue;
		}
		cg_err("scan:   unit %d answers", u);
		units[n++] = u;
	}
	/* Devices found before an interruption are still fitted: a few reads each. */
	for (int i = 0; i < n && rc == CG_OK; i++) {
		const cg_profile_t *p = best_profile(s, mb, units[i]);

		if (!p)
			cg_err("scan:   unit %d: no shipped profile fits: write one "
			       "(docs/drivers.md)",
			       units[i]);
		rc = add_found(s, baud, framing, units[i], p);
	}
	close_line(mb);
	return rc;
}

/* Loads every *.json profile of the folders; a file name found in an earlier
 * folder hides later ones, as the daemon's look-up does. */
static int load_profiles(scan_t *s)
{
	for (size_t d = 0; s->o->profile_dirs[d]; d++) {
		DIR *dir = opendir(s->o->profile_dirs[d]);
		struct dirent *e;

		if (!dir)
			continue;
		while ((e = readdir(dir))) {
			size_t len = strlen(e->d_name);
			char path[PATH_MAX], a[PROFILE_REF_MAX], b[PROFILE_REF_MAX];
			cg_diag_t diag = {0};
			cg_profile_t *p = NULL, **grown;
			bool seen = false;

			if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", s->o->profile_dirs[d], e->d_name);
			cg_profile_load(path, NULL, NULL, &p, &diag);
			cg_diag_free(&diag);
			for (size_t i = 0; p && i < s->n_profiles; i++)
				seen = seen || strcmp(profile_ref(s->profiles[i], a),
				                      profile_ref(p, b)) == 0;
			if (!p || seen) {
				cg_profile_free(p);
				continue;
			}
			grown = realloc(s->profiles, (s->n_profiles + 1) * sizeof(*grown));
			if (!grown) {
				cg_profile_free(p);
				closedir(dir);
				return CG_ENOMEM;
			}
			s->profiles = grown;
			s->profiles[s->n_profiles++] = p;
		}
		closedir(dir);
	}
	return CG_OK;
}

/* The target's path as the config must hold it: absolute, since a relative
 * path in a config is read against the config's folder. */
static char *absolute_path(const char *target)
{
	char cwd[PATH_MAX], *out;

	if (target[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		return strdup(target);
	out = malloc(strlen(cwd) + strlen(target) + 2);
	if (out)
		sprintf(out, "%s/%s", cwd, target);
	return out;
}

/* Writes the --profile-dir folders the scan used (as absolute paths) as the
 * config's profile_dirs, so that the profiles it names are found. */
static int add_profile_dirs(cJSON *root, const cg_scan_opts_t *o)
{
	cJSON *dirs;

	if (!o->n_user_dirs)
		return CG_OK;
	if (!(dirs = cJSON_AddArrayToObject(root, "profile_dirs")))
		return CG_ENOMEM;
	for (size_t i = 0; i < o->n_user_dirs; i++) {
		char *abs = absolute_path(o->profile_dirs[i]);
		cJSON *item = abs ? cJSON_CreateString(abs) : NULL;

		free(abs);
		if (!item || !cJSON_AddItemToArray(dirs, item))
			return CG_ENOMEM;
	}
	return CG_OK;
}

/* Prints the config for the devices found at the line setting of the first
 * one that fits a profile: an RS-485 line runs at one setting. */
static int print_config(const scan_t *s)
{
	const found_t *line = NULL;
	cJSON *root = cJSON_CreateObject(), *gw, *mqtt, *store, *bus, *buses, *sensors;
	char *device = NULL, *text = NULL;
	char parity[2] = {0};
	int rc = CG_ENOMEM;

	if (!root)
		return CG_ENOMEM;
	for (size_t i = 0; i < s->n_found && !line; i++)
		if (s->found[i].profile)
			line = &s->found[i];
	if (!line)
		goto free_root;
	gw = cJSON_AddObjectToObject(root, "gateway");
	mqtt = cJSON_AddObjectToObject(root, "mqtt");
	store = cJSON_AddObjectToObject(root, "store");
	buses = cJSON_AddArrayToObject(root, "buses");
	sensors = cJSON_AddArrayToObject(root, "sensors");
	bus = cJSON_CreateObject();
	if (!gw || !mqtt || !store || !buses || !sensors || !bus ||
	    !cJSON_AddItemToArray(buses, bus))
		goto free_root;
	cJSON_AddStringToObject(gw, "id", "gw-change-me");
	cJSON_AddStringToObject(mqtt, "uri", "tcp://127.0.0.1:1883");
	cJSON_AddStringToObject(mqtt, "topic_prefix", "city/change-me");
	cJSON_AddStringToObject(store, "path", "outbox.db");
	if (add_profile_dirs(root, s->o) < 0)
		goto free_root;
	cJSON_AddStringToObject(bus, "id", s->port ? "lan-1" : "rs485-1");
	if (s->port) {
		cJSON_AddStringToObject(bus, "type", "modbus-tcp");
		cJSON_AddStringToObject(bus, "host", s->host);
		cJSON_AddNumberToObject(bus, "port", s->port);
	} else {
		if (!(device = absolute_path(s->o->target)))
			goto free_root;
		parity[0] = line->framing[1];
		cJSON_AddStringToObject(bus, "type", "modbus-rtu");
		cJSON_AddStringToObject(bus, "device", device);
		cJSON_AddNumberToObject(bus, "baud", (double)line->baud);
		cJSON_AddStringToObject(bus, "parity", parity);
		cJSON_AddNumberToObject(bus, "data_bits", line->framing[0] - '0');
		cJSON_AddNumberToObject(bus, "stop_bits", line->framing[2] - '0');
	}
	for (size_t i = 0; i < s->n_found; i++) {
		const found_t *f = &s->found[i];
		cJSON *sensor;
		char id[96], ref[PROFILE_REF_MAX];

		if (!f->profile)
			continue;
		if (f->baud != line->baud || strcmp(f->framing, line->framing) != 0) {
			cg_err("scan: unit %d answers at %ld %s, not at the line's %ld %s: left out "
			       "(a line runs at one setting)",
			       f->unit, f->baud, f->framing, line->baud, line->framing);
			continue;
		}
		if (!(sensor = cJSON_CreateObject()) || !cJSON_AddItemToArray(sensors, sensor))
			goto free_root;
		snprintf(id, sizeof(id), "%s-%d", profile_ref(f->profile, ref), f->unit);
		/* An id is a topic level: 1-63 of A-Z a-z 0-9 . _ - */
		for (char *c = id; *c; c++)
			if (!isalnum((unsigned char)*c) && !strchr("._-", *c))
				*c = '-';
		id[63] = '\0';
		cJSON_AddStringToObject(sensor, "id", id);
		cJSON_AddStringToObject(sensor, "bus", s->port ? "lan-1" : "rs485-1");
		cJSON_AddStringToObject(sensor, "driver", "modbus");
		cJSON_AddStringToObject(sensor, "profile", profile_ref(f->profile, ref));
		cJSON_AddNumberToObject(sensor, "unit_id", f->unit);
		cJSON_AddNumberToObject(sensor, "interval_s", 10);
	}
	if (!(text = cJSON_Print(root)))
		goto free_root;
	cg_out(text);
	rc = CG_OK;
free_root:
	free(text);
	free(device);
	cJSON_Delete(root);
	return rc;
}

/* Splits HOST:PORT into s; false for a device path. */
static bool parse_tcp_target(scan_t *s, const char *target)
{
	const char *colon = strrchr(target, ':');
	char *end;
	long port;

	if (target[0] == '/' || !colon || colon == target ||
	    (size_t)(colon - target) >= sizeof(s->host))
		return false;
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		return false;
	memcpy(s->host, target, (size_t)(colon - target));
	s->host[colon - target] = '\0';
	s->port = (int)port;
	return true;
}

int cg_scan_run(const cg_scan_opts_t *o, volatile sig_atomic_t *stop)
{
	scan_t s = {.o = o, .stop = stop};
	int rc = CG_OK, status;
	size_t fitted = 0;
	bool answered = false;

	parse_tcp_target(&s, o->target);
	if (!s.port && access(o->target, R_OK | W_OK) != 0) {
		cg_err("citygate: --scan: %s: %s", o->target, strerror(errno));
		return 2;
	}
	rc = load_profiles(&s);
	cg_err("scan: %zu profile%s to fit", s.n_profiles, plural(s.n_profiles));
	if (s.port) {
		rc = scan_line(&s, 0, NULL, &answered);
	} else {
		size_t n_settings = o->n_bauds * o->n_framings;

		/* Every baud at every framing, bauds outermost. The devices of an
		 * RS-485 line share one setting, so the first where any unit
		 * answered is the line's: the rest would only add minutes of
		 * timeouts. --all-settings goes on, for a line of mixed settings. */
		for (size_t i = 0; i < n_settings && rc == CG_OK && !*stop; i++) {
			long baud = o->bauds[i / o->n_framings];
			const char *framing = o->framings[i % o->n_framings];
			size_t left = n_settings - i - 1;

			answered = false;
			rc = scan_line(&s, baud, framing, &answered);
			if (!answered || o->all_settings || !left || rc != CG_OK || *stop)
				continue;
			cg_err("scan: answers at %ld %s, the line's setting: skipping the %zu "
			       "setting%s left (--all-settings tries them too)",
			       baud, framing, left, plural(left));
			break;
		}
	}
	for (size_t i = 0; i < s.n_found; i++)
		fitted += s.found[i].profile != NULL;
	if (*stop)
		cg_err("scan: interrupted; what was found so far follows");
	if (fitted)
		print_config(&s);
	cg_err("scan: %zu device%s answered, %zu fit%s a shipped profile", s.n_found,
	       plural(s.n_found), fitted, fitted == 1 ? "s" : "");
	status = rc == CG_EIO && !s.n_found ? 2 : (s.n_found && !*stop ? 0 : 1);
	for (size_t i = 0; i < s.n_profiles; i++)
		cg_profile_free(s.profiles[i]);
	free(s.profiles);
	free(s.found);
	return status;
}
