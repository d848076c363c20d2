/* Loading Paho: the plain library for tcp://, the TLS one only for ssl://
 * (uplink/paho.h says why). */
#include "uplink/paho.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Paho 1.3 sonames, as Debian's libpaho-mqtt1.3 installs them. */
#define PAHO_PLAIN "libpaho-mqtt3a.so.1"
#define PAHO_TLS   "libpaho-mqtt3as.so.1"

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static cg_paho_t tables[2]; /* [0] plain, [1] TLS */
static bool loaded[2];

/* Looks every function up in handle; false (and err) if one is missing. */
static bool resolve(void *handle, cg_paho_t *t, const char *lib, char *err, size_t err_len)
{
	static const struct {
		const char *name;
		size_t offset;
	} fns[] = {
#define FN(field, symbol) {#symbol, offsetof(cg_paho_t, field)}
	    FN(createWithOptions, MQTTAsync_createWithOptions),
	    FN(setCallbacks, MQTTAsync_setCallbacks),
	    FN(setDisconnected, MQTTAsync_setDisconnected),
	    FN(connect, MQTTAsync_connect),
	    FN(disconnect, MQTTAsync_disconnect),
	    FN(isConnected, MQTTAsync_isConnected),
	    FN(destroy, MQTTAsync_destroy),
	    FN(send, MQTTAsync_send),
	    FN(freeMessage, MQTTAsync_freeMessage),
	    FN(free, MQTTAsync_free),
	    FN(strerror, MQTTAsync_strerror),
	    FN(propertiesAdd, MQTTProperties_add),
	    FN(propertiesFree, MQTTProperties_free),
	    FN(hasProperty, MQTTProperties_hasProperty),
	    FN(getNumericValue, MQTTProperties_getNumericValue),
	    FN(reasonCodeToString, MQTTReasonCode_toString),
#undef FN
	};

	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		void *f = dlsym(handle, fns[i].name);

		if (!f) {
			snprintf(err, err_len, "%s has no %s", lib, fns[i].name);
			return false;
		}
		/* POSIX guarantees a data pointer from dlsym converts to a
		 * function pointer; memcpy avoids ISO C's objection to the cast. */
		memcpy((char *)t + fns[i].offset, &f, sizeof(f));
	}
	return true;
}

/*
 * Sets one loaded Paho up, once: it is told not to initialise OpenSSL
 * itself. Its own initialisation (for OpenSSL before 1.1) loads every
 * algorithm and error string up front, about 1.6 MB of resident memory;
 * OpenSSL 1.1 and later initialise themselves at the first TLS connection,
 * so ssl:// brokers work the same.
 *
 * And its trace is set to errors only. Paho keeps a ring of recent trace
 * entries in memory whether or not anyone reads them: at its default level
 * (minimum) it formats four with vsnprintf per message and records its
 * function entries under a lock. At ERROR (not SEVERE or FATAL: above ERROR
 * Paho keeps its default trace settings, measured) a message costs Paho a
 * third fewer instructions (callgrind, bench_throughput limit: 88,900 to
 * 59,500) and a fifth more messages get through the same window. Someone
 * debugging Paho who sets MQTT_C_CLIENT_TRACE or MQTT_C_CLIENT_TRACE_LEVEL
 * gets its trace as before.
 */
static bool set_up(void *handle, const char *lib, char *err, size_t err_len)
{
	__typeof__(MQTTAsync_global_init) *global_init = NULL;
	__typeof__(MQTTAsync_setTraceLevel) *set_trace = NULL;
	MQTTAsync_init_options io = MQTTAsync_init_options_initializer;
	void *f;

	if (!(f = dlsym(handle, "MQTTAsync_global_init"))) {
		snprintf(err, err_len, "%s has no MQTTAsync_global_init", lib);
		return false;
	}
	memcpy(&global_init, &f, sizeof(f));
	if (!(f = dlsym(handle, "MQTTAsync_setTraceLevel"))) {
		snprintf(err, err_len, "%s has no MQTTAsync_setTraceLevel", lib);
		return false;
	}
	memcpy(&set_trace, &f, sizeof(f));
	io.do_openssl_init = 0;
	global_init(&io);
	if (!getenv("MQTT_C_CLIENT_TRACE") && !getenv("MQTT_C_CLIENT_TRACE_LEVEL"))
		set_trace(MQTTASYNC_TRACE_ERROR);
	return true;
}

const cg_paho_t *cg_paho_load(bool tls, char *err, size_t err_len)
{
	const char *lib = tls ? PAHO_TLS : PAHO_PLAIN;
	const cg_paho_t *out = NULL;
	void *handle;
	int k = tls ? 1 : 0;

	pthread_mutex_lock(&load_lock);
	if (loaded[k]) {
		out = &tables[k];
		goto done;
	}
	/* A process that links Paho itself has it in the global scope: loading
	 * a second copy beside it would let the two bind to each other's
	 * symbols. It must be the TLS library, which does both. */
	if (dlsym(RTLD_DEFAULT, "MQTTAsync_send")) {
		handle = RTLD_DEFAULT;
		lib = "the linked Paho";
		k = 1;
		if (loaded[k]) {
			out = &tables[k];
			goto done;
		}
	} else if (!(handle = dlopen(lib, RTLD_NOW | RTLD_LOCAL))) {
		const char *why = dlerror();

		snprintf(err, err_len, "cannot load %s: %s", lib, why ? why : "unknown error");
		goto done;
	}
	/* Never unloaded: Paho's threads may outlive the last client. */
	if (resolve(handle, &tables[k], lib, err, err_len) && set_up(handle, lib, err, err_len)) {
		tables[k].tls = k == 1;
		loaded[k] = true;
		out = &tables[k];
	}
done:
	pthread_mutex_unlock(&load_lock);
	return out;
}

const cg_paho_t *cg_paho_loaded(void)
{
	const cg_paho_t *out = NULL;

	pthread_mutex_lock(&load_lock);
	if (loaded[0])
		out = &tables[0];
	else if (loaded[1])
		out = &tables[1];
	pthread_mutex_unlock(&load_lock);
	return out;
}
