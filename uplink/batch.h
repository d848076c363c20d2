/* Batches: many encoded readings of one format in one MQTT payload (docs/topics.md, "Batches"). */
#ifndef CG_BATCH_H
#define CG_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "uplink/encode.h"

/*
 * A batch is built from readings already encoded one by one (what the outbox
 * holds), so that a reading keeps exactly the bytes, seq and ts it was stored
 * with, whether it goes alone or in a batch, and a batch can be built again
 * from the same rows after a reconnect:
 *   native   {"gateway":..,"layouts":[..],"sensors":[..]}: each reading's kind,
 *            value names and units once per layout, its seq, ts, values (and
 *            interval_s, quality when not "ok", clock when flagged) per reading;
 *   senml    one pack: every reading's records, each keeping its bn and bt;
 *   ngsi-ld  an array of the readings' entities.
 * The builder knows the exact size of the payload it would make, so that the
 * caller can bound it by bytes before building it.
 */
typedef struct cg_batch cg_batch_t;

/* A new, empty batch of format f for gateway_id (copied). CG_ENOMEM. */
int cg_batch_new(cg_format_t f, const char *gateway_id, cg_batch_t **out);

/* Frees b; accepts NULL. */
void cg_batch_free(cg_batch_t *b);

/* The format a single-reading payload was encoded in, told by its first bytes
 * (an NGSI-LD entity, a SenML pack, a native object), or -1 for none of them. */
int cg_batch_format_of(const char *payload, size_t len);

/*
 * Adds reading seq, encoded alone as payload (len bytes), unless the batch
 * would then be larger than max_bytes: CG_ERANGE, and nothing is added (a
 * reading alone larger than max_bytes is still added to an empty batch: the
 * caller sends it and the broker's limit decides). CG_EINVAL when payload is
 * not one reading of the batch's format (a damaged row: the caller sets it
 * aside; for native, also when its seq is not seq); CG_ENOMEM. On any error
 * the batch is as it was.
 */
int cg_batch_add(cg_batch_t *b, int64_t seq, const char *payload, size_t len, size_t max_bytes);

/* Readings in b, and their seqs in the order added (owned by b, valid until
 * the next add, take or reset). */
size_t cg_batch_count(const cg_batch_t *b);
const int64_t *cg_batch_seqs(const cg_batch_t *b);

/* The exact length of the payload cg_batch_take() would make now. */
size_t cg_batch_len(const cg_batch_t *b);

/* Builds the payload: *out is NUL-terminated, from malloc, for the caller to free; *len
 * its length (cg_batch_len()). The batch is then empty again. CG_ENOMEM (the batch is
 * kept), CG_EINVAL when it is empty. */
int cg_batch_take(cg_batch_t *b, char **out, size_t *len);

/* Empties b, keeping its memory for the next batch. */
void cg_batch_reset(cg_batch_t *b);

/* Writes "{prefix}/{gateway}/batch" into buf; CG_ERANGE if it does not fit. */
int cg_topic_batch(char *buf, size_t size, const char *prefix, const char *gateway);

#endif
