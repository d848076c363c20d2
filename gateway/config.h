/* The gateway's configuration: one JSON file, parsed by tables, fully validated. */
#ifndef CG_CONFIG_H
#define CG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/diag.h"
#include "drivers/driver.h"
#include "uplink/encode.h"

typedef struct cg_bus_config {
	char *id;
	cg_bus_line_t line;   /* what the transport needs to open the bus */
	double backoff_max_s; /* longest back-off of a silent sensor, default 60 */
} cg_bus_config_t;

typedef struct cg_sensor_config {
	char *id;
	char *bus;
	char *driver_name;
	double interval_s;         /* > 0, fractions allowed */
	int format;                /* a cg_format_t, or -1 to use mqtt.format */
	const cg_driver_t *driver; /* resolved */
	size_t bus_index;          /* index into cg_config_t.buses */
	cg_driver_options_t *options; /* the driver's keys, parsed: what driver->open() takes */
	char *pointer;             /* "/sensors/N" */
	bool aligned;              /* polls at wall-clock multiples of interval_s */
	bool report_on_change;     /* publish only changes beyond the deadband ... */
	double deadband;           /* ... of any number (absolute), */
	double max_silence_s;      /* ... or when this long has passed since the last */
	char *ngsi_attrs;          /* "ngsi_ld" rendered for the encoder, or NULL */
} cg_sensor_config_t;

/* A parking lot: bays (sensor ids) counted into available/occupied/total. */
typedef struct cg_lot_config {
	char *id;
	char **bays;
	size_t n_bays;
	double max_interval_s; /* publish at least this often; default 60 */
	char *ngsi_attrs;      /* "ngsi_ld" rendered for the encoder, or NULL */
} cg_lot_config_t;

typedef struct cg_mqtt_config {
	char *uri; /* "tcp://host:port", "ssl://host:port" */
	char *topic_prefix;
	char *client_id;                      /* default: gateway id */
	char *username;                       /* NULL when none */
	char *password_file;                  /* NULL when none; read by cg_config_read_secret() */
	int qos;                              /* 0 or 1, default 1 */
	cg_format_t format;                   /* default native */
	char *ca_file, *cert_file, *key_file; /* NULL when not set */
	int inflight;                         /* in-flight window, default 64 */
	int keepalive_s;                      /* default 30 */
	double reconnect_min_s, reconnect_max_s; /* default 1 and 60 */
	double replay_rate; /* backlog messages/s after a reconnect; 0 (default): no limit */
	int version;        /* a cg_mqtt_version_t; default auto */
	int64_t session_expiry_s; /* MQTT 5 session expiry; default 0 */
	/* MQTT 5 message expiry of readings per kind; 0 (default): none */
	int64_t expiry_air_quality_s, expiry_parking_s, expiry_traffic_s, expiry_weather_s;
	/* mqtt.batch: many readings per message (docs/topics.md, "Batches"); opt-in */
	bool batch;               /* the object is there */
	int batch_max_readings;   /* 1-1000, default 100 */
	int64_t batch_max_bytes;  /* payload bytes, >= 1024, default 65536 */
	int batch_max_latency_ms; /* longest the oldest reading waits, default 1000 */
} cg_mqtt_config_t;

typedef struct cg_store_config {
	char *path;
	int64_t max_rows;  /* default 1000000 */
	int64_t max_bytes; /* default 268435456 */
	int64_t max_age_s; /* default 604800 */
	bool sync_full;    /* "full"; default "normal" */
	int batch_ms;      /* longest a reading waits to be committed, default 100 */
} cg_store_config_t;

typedef struct cg_config {
	char *path;
	/* Relative paths in the file (store.path, mqtt.password_file, mqtt.tls
	 * files, profile_dirs) are stored resolved against the file's folder. */
	char *gateway_id;
	bool has_location;
	double lat, lon;
	double health_interval_s; /* default 60 */
	int clock_policy;         /* cg_clock_policy_t; default trust */
	cg_mqtt_config_t mqtt;
	cg_store_config_t store;
	char **profile_dirs; /* NULL-terminated: "profile_dirs" from the file, then the defaults */
	cg_bus_config_t *buses;
	size_t n_buses;
	cg_sensor_config_t *sensors;
	size_t n_sensors;
	cg_lot_config_t *lots;
	size_t n_lots;
} cg_config_t;

/* Reads and validates the config file at path, including every driver's keys
 * and every profile it names. On any problem returns CG_EINVAL (or CG_ENOENT
 * when the file cannot be read) with one diag line per problem, and *out is
 * NULL. The caller owns *out. */
int cg_config_load(const char *path, cg_config_t **out, cg_diag_t *diag);

/* The same over a text already in memory; path only names it in diag lines
 * and anchors every relative path (store, bus devices, TLS and password
 * files, profiles). */
int cg_config_parse(const char *text, size_t len, const char *path, cg_config_t **out,
                    cg_diag_t *diag);

/* Frees cfg; accepts NULL. */
void cg_config_free(cg_config_t *cfg);

/* The environment drivers see for this config. */
cg_driver_env_t cg_config_driver_env(const cg_config_t *cfg);

/* Reads a secret (the MQTT password) from path: the first line, without its
 * newline. Refuses with CG_EPERM a file that group or others may read or
 * write, and with CG_ENOENT one that cannot be read; never logs the secret.
 * *out is kept out of core dumps (cg_secret_dup); the caller releases it with
 * cg_secret_free(), which wipes it. */
int cg_config_read_secret(const char *path, char **out);

/* The name of a bus type as in the config file ("modbus-rtu", "modbus-tcp",
 * "serial", "modbus-rtu-tcp"), or "unknown". */
const char *cg_bus_type_name(cg_bus_type_t t);

#endif
