/* JSON files: read whole, parsed with the place of a syntax error, and paths relative to them. */
#ifndef CG_JSONFILE_H
#define CG_JSONFILE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "base/diag.h"

/* Reads the whole file at path into a NUL-terminated buffer the caller
 * frees. Returns 0, CG_ENOMEM, or CG_ENOENT with errno telling why (EFBIG
 * for a file larger than max bytes). */
int cg_file_read(const char *path, size_t max, char **text, size_t *len);

/* Parses text (len bytes) as one JSON object, and nothing after it but white
 * space. Returns the object, or NULL with one line in diag under file: ""
 * "the file is empty", "line L column C" "malformed JSON" (both from 1,
 * columns in characters, where the parser stopped), or "" "must be an
 * object". Thread-safe: it does not use cJSON's global error pointer. */
cJSON *cg_json_parse(const char *text, size_t len, const char *file, cg_diag_t *diag);

/* Writes "line L column C" for the byte at offset of text, both from 1,
 * columns in characters (UTF-8 continuation bytes are not counted): where a
 * problem of the text itself is, as cg_json_parse() words it. */
void cg_json_position(const char *text, size_t offset, char *buf, size_t size);

/* path as it is when absolute or when anchor (a file) is NULL or has no
 * folder, else joined to anchor's folder: a relative path in a file means
 * "next to this file", not "wherever the daemon was started". The caller
 * frees the result; NULL when out of memory. */
char *cg_path_resolve(const char *anchor, const char *path);

#endif
