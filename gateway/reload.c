/* SIGHUP: reading the config again and swapping it in, keeping the outbox and,
 * when the broker settings did not change, the MQTT session. */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/notify.h"
#include "base/secret.h"
#include "gateway/gateway_private.h"

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* True when two configs reach the broker the same way, so that a reload can
 * keep the MQTT session. A changed password in the same file is caught by
 * password_changed(). */
static bool same_broker(const cg_config_t *a, const cg_config_t *b)
{
	const cg_mqtt_config_t *x = &a->mqtt, *y = &b->mqtt;

	return same_str(a->gateway_id, b->gateway_id) && same_str(x->uri, y->uri) &&
	       same_str(x->topic_prefix, y->topic_prefix) && same_str(x->client_id, y->client_id) &&
	       same_str(x->username, y->username) && same_str(x->password_file, y->password_file) &&
	       same_str(x->ca_file, y->ca_file) && same_str(x->cert_file, y->cert_file) &&
	       same_str(x->key_file, y->key_file) && x->keepalive_s == y->keepalive_s &&
	       x->inflight == y->inflight && x->reconnect_min_s == y->reconnect_min_s &&
	       x->reconnect_max_s == y->reconnect_max_s && x->version == y->version &&
	       x->session_expiry_s == y->session_expiry_s;
}

/* Whether the password in next's file differs from the one in use; an
 * unreadable file counts as changed, so that the new session reports it. */
static bool password_changed(const gw_t *g, const cg_config_t *next)
{
	char *password = NULL;
	uint64_t digest;

	if (next->mqtt.password_file &&
	    cg_config_read_secret(next->mqtt.password_file, &password) < 0)
		return true;
	digest = gw_secret_digest(password);
	cg_secret_free(password);
	return digest != g->password_digest;
}

static bool same_store(const cg_store_config_t *a, const cg_store_config_t *b)
{
	return a->max_rows == b->max_rows && a->max_bytes == b->max_bytes &&
	       a->max_age_s == b->max_age_s && a->sync_full == b->sync_full;
}

/* SIGHUP: reads the config file again. An invalid one is refused with the
 * --check lines in the log and the running one goes on. A valid one
 * replaces buses and sensors; the outbox and seq are kept, and so is the
 * MQTT session unless the broker settings changed. The store's path cannot
 * change without a restart (the undelivered rows are in the old file). */
void gw_reload(gw_t *g)
{
	cg_diag_t diag = {0};
	cg_config_t *next = NULL;
	bool keep_session, reopen_store, rebatch;
	int rc;

	cg_notify("RELOADING=1");
	cg_config_load(g->cfg->path, &next, &diag);
	for (size_t i = 0; i < diag.n; i++)
		cg_log(CG_LOG_ERR, "%s", diag.lines[i]);
	cg_diag_free(&diag);
	if (!next) {
		cg_log(CG_LOG_ERR, "reload refused: %s is invalid; the running config stays",
		       g->cfg->path);
		cg_notify("READY=1");
		return;
	}
	if (strcmp(next->store.path, g->cfg->store.path) != 0) {
		cg_log(CG_LOG_WARNING,
		       "reload: store.path changed to %s; it takes effect at the "
		       "next restart, the outbox stays %s",
		       next->store.path, g->cfg->store.path);
		free(next->store.path);
		next->store.path = strdup(g->cfg->store.path);
		if (!next->store.path) {
			cg_config_free(next);
			cg_notify("READY=1");
			return;
		}
	}
	keep_session = same_broker(g->cfg, next) && !password_changed(g, next);
	reopen_store = !same_store(&g->cfg->store, &next->store);

	/* Everything made under the old config is encoded with it first. */
	gw_stop_buses(g);
	if (!keep_session)
		gw_close_publisher(g);
	if (reopen_store) {
		gw_flush_acks(g, true);
		cg_outbox_close(g->ob);
		g->ob = NULL;
	}
	/* Batches being filled follow the old bounds and gateway id: their rows
	 * are read back and batched again under the new ones. */
	rebatch = g->cfg->mqtt.batch != next->mqtt.batch ||
	          g->cfg->mqtt.batch_max_readings != next->mqtt.batch_max_readings ||
	          g->cfg->mqtt.batch_max_bytes != next->mqtt.batch_max_bytes ||
	          strcmp(g->cfg->gateway_id, next->gateway_id) != 0;
	cg_config_free(g->cfg);
	g->cfg = next;
	if (rebatch)
		gw_batch_free(g);
	gw_set_encode_ctx(g);
	rc = reopen_store ? gw_open_outbox(g) : CG_OK;
	if (rc == CG_OK && !keep_session)
		rc = gw_open_publisher(g);
	else if (rc == CG_OK && rebatch)
		gw_rewind_cursors(g);
	if (rc == CG_OK)
		rc = gw_start_buses(g);
	if (rc < 0) {
		/* Without a store or a client the gateway cannot keep its promise
		 * not to lose data: stop, and let systemd restart it. */
		cg_log(CG_LOG_ERR, "reload failed: %s; stopping", cg_strerror(rc));
		g->sig->stop = 1;
		return;
	}
	g->next_health_ms = cg_mono_ms() + (int64_t)(g->cfg->health_interval_s * 1000.0);
	cg_log(CG_LOG_INFO, "reloaded %s: %zu buses, %zu sensors; MQTT session %s", g->cfg->path,
	       g->cfg->n_buses, g->cfg->n_sensors, keep_session ? "kept" : "renewed");
	cg_notify("READY=1");
}
