/* Paho MQTTAsync, loaded when the first client is made rather than linked:
 * libpaho-mqtt3a for tcp://, libpaho-mqtt3as only for ssl://. The TLS
 * library pulls in libssl and libcrypto, about 2 MB resident, which a box
 * that speaks plain MQTT to its broker never uses. */
#ifndef CG_PAHO_H
#define CG_PAHO_H

#include <MQTTAsync.h>
#include <stdbool.h>
#include <stddef.h>

/* The Paho functions the publisher calls, from one library. A client must
 * be driven by the table that created it: two libraries in one process (a
 * reload from tcp:// to ssl://) are two Pahos with their own state. */
typedef struct cg_paho {
	__typeof__(MQTTAsync_createWithOptions) *createWithOptions;
	__typeof__(MQTTAsync_setCallbacks) *setCallbacks;
	__typeof__(MQTTAsync_setDisconnected) *setDisconnected;
	__typeof__(MQTTAsync_connect) *connect;
	__typeof__(MQTTAsync_disconnect) *disconnect;
	__typeof__(MQTTAsync_isConnected) *isConnected;
	__typeof__(MQTTAsync_destroy) *destroy;
	__typeof__(MQTTAsync_send) *send;
	__typeof__(MQTTAsync_freeMessage) *freeMessage;
	__typeof__(MQTTAsync_free) *free;
	__typeof__(MQTTAsync_strerror) *strerror;
	__typeof__(MQTTProperties_add) *propertiesAdd;
	__typeof__(MQTTProperties_free) *propertiesFree;
	__typeof__(MQTTProperties_hasProperty) *hasProperty;
	__typeof__(MQTTProperties_getNumericValue) *getNumericValue;
	__typeof__(MQTTReasonCode_toString) *reasonCodeToString;
	bool tls; /* this library speaks ssl:// */
} cg_paho_t;

/*
 * The Paho for a client, tls for an ssl:// broker; loaded and set up (no
 * OpenSSL initialisation of its own, trace at errors only) once per
 * process. A program that links Paho itself (the benchmark's plain loop)
 * gets the Paho it linked, which must then be the TLS one (paho-mqtt3as),
 * so that its clients and the publisher's share one Paho. NULL when the
 * library cannot be loaded; err then says why.
 */
const cg_paho_t *cg_paho_load(bool tls, char *err, size_t err_len);

/* A Paho already loaded (for the functions that work on no client: reason
 * and error names), or NULL when none is. */
const cg_paho_t *cg_paho_loaded(void);

#endif
