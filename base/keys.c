/* Key tables: one row per key of a JSON object, walked by one walker that words every problem. */
#include "base/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/jsonfile.h"

#define KEYS_PTR_MAX 512
#define KEYS_MSG_MAX 256
/* The largest integer a JSON number (a double) holds exactly: the bound of
 * an integer key without bounds of its own. */
#define KEYS_JSON_INT_MAX 9007199254740991.0

void cg_walk_problem(cg_walk_t *w, const char *pointer, const char *fmt, ...)
{
	char msg[KEYS_MSG_MAX + KEYS_PTR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (w->diag)
		cg_diag_add(w->diag, w->file, pointer, "%s", msg);
	w->errors++;
}

/* Writes v as a file would say it: integers without a fraction. */
static void num_text(char *buf, size_t size, double v)
{
	if (v > -1e16 && v < 1e16 && v == (double)(long long)v)
		snprintf(buf, size, "%lld", (long long)v);
	else
		snprintf(buf, size, "%g", v);
}

/* Whether a row has bounds (numbers, string lengths, item counts). */
static bool bounded(const cg_key_t *k)
{
	return k->min != 0 || k->max != 0;
}

const cg_key_t *cg_key_find(const cg_key_t *keys, const char *name)
{
	for (const cg_key_t *k = keys; k && k->name; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

/* The index of s among a string enum's names, or -1. */
static int enum_index(const cg_key_t *k, const char *s)
{
	for (int i = 0; k->names[i]; i++)
		if (strcmp(k->names[i], s) == 0)
			return i;
	return -1;
}

/* Whether another member of obj before c has c's name: cJSON keeps both, and
 * a reader would not know which one counts. */
static bool repeated(const cJSON *obj, const cJSON *c)
{
	for (const cJSON *o = obj->child; o && o != c; o = o->next)
		if (strcmp(o->string, c->string) == 0)
			return true;
	return false;
}

/* Writes the rule a key's value must follow ("must be one of ...", "must be
 * an integer from 0 to 1"), the message for a wrong type and for a value out
 * of bounds alike, so a problem line always tells what would be accepted. */
static void key_rule(const cg_key_t *k, char *msg, size_t size)
{
	const char *what = k->type == CG_J_INTEGER ? "an integer" : "a number";
	char a[32], b[32];
	size_t o;

	num_text(a, sizeof(a), k->min);
	num_text(b, sizeof(b), k->max);
	switch (k->type) {
	case CG_J_STRING:
		if (!k->names) {
			snprintf(msg, size, "must be a string");
			return;
		}
		o = (size_t)snprintf(msg, size, "must be one of ");
		for (size_t i = 0; k->names[i] && o < size; i++)
			o += (size_t)snprintf(msg + o, size - o, "%s\"%s\"", i ? ", " : "",
			                      k->names[i]);
		return;
	case CG_J_INTEGER:
		if (k->values) {
			o = (size_t)snprintf(msg, size, "must be one of ");
			for (size_t i = 0; i < k->n_values && o < size; i++)
				o += (size_t)snprintf(msg + o, size - o, "%s%d", i ? ", " : "",
				                      k->values[i]);
			return;
		}
		/* fall through */
	case CG_J_NUMBER:
		if (bounded(k))
			snprintf(msg, size, "must be %s from %s to %s", what, a, b);
		else
			snprintf(msg, size, "must be %s", what);
		return;
	case CG_J_BOOL: snprintf(msg, size, "must be true or false"); return;
	case CG_J_OBJECT: snprintf(msg, size, "must be an object"); return;
	case CG_J_ARRAY: snprintf(msg, size, "must be an array"); return;
	}
}

/* The rule a string's length breaks, or NULL. */
static const char *length_problem(const cg_key_t *k, size_t len, char *msg, size_t size)
{
	if (len >= k->min && (k->max == 0 || len <= k->max))
		return NULL;
	if (k->max == 0)
		snprintf(msg, size, "must not be empty");
	else if (k->min > 0)
		snprintf(msg, size, "must be %g to %g characters", k->min, k->max);
	else
		snprintf(msg, size, "must be at most %g characters", k->max);
	return msg;
}

const char *cg_key_problem(const cg_key_t *k, const cJSON *item, char *msg, size_t size)
{
	const char *s, *m;
	double v, lo, hi;
	int n;
	bool ok = false;

	switch (k->type) {
	case CG_J_STRING:
		if (!cJSON_IsString(item) || !item->valuestring)
			break;
		s = item->valuestring;
		if (k->names) {
			ok = enum_index(k, s) >= 0;
			break;
		}
		if (length_problem(k, strlen(s), msg, size))
			return msg;
		if (k->check && (m = k->check(s))) {
			snprintf(msg, size, "%s", m);
			return msg;
		}
		ok = true;
		break;
	case CG_J_INTEGER:
	case CG_J_NUMBER:
		if (!cJSON_IsNumber(item))
			break;
		v = item->valuedouble;
		if (k->values) {
			for (size_t i = 0; i < k->n_values; i++)
				ok = ok || v == k->values[i];
			break;
		}
		lo = bounded(k) ? k->min : k->type == CG_J_INTEGER ? -KEYS_JSON_INT_MAX : -HUGE_VAL;
		hi = bounded(k) ? k->max : k->type == CG_J_INTEGER ? KEYS_JSON_INT_MAX : HUGE_VAL;
		/* Bounds first: they keep the cast below defined. */
		ok = isfinite(v) && v >= lo && v <= hi &&
		     (k->type == CG_J_NUMBER || v == (double)(long long)v);
		if (ok && (k->flags & CG_K_NONZERO) && v == 0) {
			snprintf(msg, size, "must not be zero");
			return msg;
		}
		break;
	case CG_J_BOOL: ok = cJSON_IsBool(item); break;
	case CG_J_OBJECT: ok = cJSON_IsObject(item); break;
	case CG_J_ARRAY:
		if (!cJSON_IsArray(item))
			break;
		n = cJSON_GetArraySize(item);
		if (bounded(k) && (n < k->min || n > k->max)) {
			snprintf(msg, size, "must have %g to %g items", k->min, k->max);
			return msg;
		}
		ok = true;
		break;
	}
	if (ok)
		return NULL;
	key_rule(k, msg, size);
	return msg;
}

double cg_key_value(const cg_key_t *k, const cJSON *item)
{
	int i;

	switch (k->type) {
	case CG_J_BOOL: return cJSON_IsTrue(item) ? 1 : 0;
	case CG_J_STRING: i = enum_index(k, item->valuestring); return k->values ? k->values[i] : i;
	default: return item->valuedouble;
	}
}

/* Stores a number (or bool, or enum value) in k's field at base. */
static void store_value(const cg_key_t *k, char *base, double v)
{
	void *f = base + k->offset;

	switch (k->field) {
	case CG_F_INT: *(int *)f = (int)v; break;
	case CG_F_LONG: *(long *)f = (long)v; break;
	case CG_F_INT64: *(int64_t *)f = (int64_t)v; break;
	case CG_F_DOUBLE: *(double *)f = v; break;
	case CG_F_BOOL: *(bool *)f = v != 0; break;
	case CG_F_CHAR: *(char *)f = (char)v; break;
	case CG_F_NONE:
	case CG_F_STR:
	case CG_F_REF: break;
	}
}

/* Returns NULL when path names a regular file this process can open for
 * reading, else writes why not into msg. */
static const char *readable_problem(const char *path, char *msg, size_t size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		snprintf(msg, size, "cannot be read: %s", strerror(errno));
		return msg;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(msg, size, "is not a regular file");
		return msg;
	}
	close(fd);
	return NULL;
}

/* Stores a valid string item as a copy, resolved when it is a path, and
 * checked for readability when the key asks for it. */
static void store_string(cg_walk_t *w, const cg_key_t *k, char *base, const char *s,
                         const char *pointer)
{
	char msg[KEYS_MSG_MAX];
	char *copy = (k->flags & CG_K_PATH) ? cg_path_resolve(w->file, s) : strdup(s);

	if (!copy) {
		w->nomem = true;
		return;
	}
	if ((k->flags & CG_K_READABLE) && readable_problem(copy, msg, sizeof(msg)))
		cg_walk_problem(w, pointer, "%s", msg);
	*(char **)(base + k->offset) = copy;
}

/* Reports the members of obj that are repeated, in no table, or of another
 * variant; see cg_keys_walk(). A member another table owns is left to it. */
static void check_members(cg_walk_t *w, const cJSON *obj, const char *pointer, const cg_key_t *keys,
                          const cg_keys_scope_t *scope)
{
	char ptr[KEYS_PTR_MAX];

	for (const cJSON *c = obj->child; c; c = c->next) {
		const cg_key_t *k = cg_key_find(keys, c->string);
		bool theirs = !k && (scope->others || cg_key_find(scope->also, c->string));

		if (theirs)
			continue;
		cg_pointer_key(ptr, sizeof(ptr), pointer, c->string);
		if (repeated(obj, c))
			cg_walk_problem(w, ptr, "duplicate key");
		else if (!k)
			cg_walk_problem(w, ptr, "unknown key");
		else if (k->variants && scope->variant && !(k->variants & scope->variant))
			cg_walk_problem(w, ptr, "not valid for a %s", scope->variant_label);
	}
}

void cg_keys_walk(cg_walk_t *w, const cJSON *obj, const char *pointer, const cg_key_t *keys,
                  void *base, const cg_keys_scope_t *scope, cg_key_state_t *state)
{
	static const cg_keys_scope_t none;
	char ptr[KEYS_PTR_MAX];
	char msg[KEYS_MSG_MAX];
	char *b = base;

	if (!scope)
		scope = &none;
	if (!cJSON_IsObject(obj)) {
		cg_walk_problem(w, pointer, "must be an object");
		obj = NULL;
	} else {
		check_members(w, obj, pointer, keys, scope);
	}
	for (const cg_key_t *k = keys; k->name; k++) {
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, k->name);
		bool applies = !k->variants || (k->variants & scope->variant);
		/* A key of another variant was refused above; with the variant
		 * unknown, the value is still judged on its own. */
		bool judged = applies || (k->variants && !scope->variant);
		size_t row = (size_t)(k - keys);

		cg_pointer_key(ptr, sizeof(ptr), pointer, k->name);
		if (state)
			state[row] = item ? CG_KEY_INVALID : CG_KEY_ABSENT;
		if (!item || !judged || cg_key_problem(k, item, msg, sizeof(msg))) {
			if (!item && obj && applies && (k->flags & CG_K_REQUIRED))
				cg_walk_problem(w, ptr, "required key missing");
			else if (item && judged)
				cg_walk_problem(w, ptr, "%s", msg);
			store_value(k, b, k->def);
			if (k->each)
				k->each(w, NULL, ptr);
			continue;
		}
		if (state)
			state[row] = CG_KEY_VALID;
		if (k->field == CG_F_REF)
			*(const void **)(b + k->offset) = cJSON_IsString(item)
			                                      ? (const void *)item->valuestring
			                                      : (const void *)item;
		switch (k->type) {
		case CG_J_OBJECT:
			if (k->sub)
				cg_keys_walk(w, item, ptr, k->sub, b + k->offset, NULL, NULL);
			if (k->post)
				k->post(w, item, b + k->offset);
			break;
		case CG_J_ARRAY:
			if (k->each)
				k->each(w, item, ptr);
			break;
		case CG_J_STRING:
			if (k->field == CG_F_STR)
				store_string(w, k, b, item->valuestring, ptr);
			else if (k->names)
				store_value(k, b, cg_key_value(k, item));
			break;
		default: store_value(k, b, cg_key_value(k, item)); break;
		}
	}
}

bool cg_keys_usable(const cJSON *obj, const cg_key_t *keys, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
	const cg_key_t *k = cg_key_find(keys, name);
	char msg[KEYS_MSG_MAX];

	return !item || (k && !cg_key_problem(k, item, msg, sizeof(msg)));
}

void cg_keys_free(const cg_key_t *keys, void *base)
{
	char *b = base;

	for (const cg_key_t *k = keys; b && k->name; k++) {
		if (k->field == CG_F_STR) {
			free(*(char **)(b + k->offset));
			*(char **)(b + k->offset) = NULL;
		} else if (k->sub) {
			cg_keys_free(k->sub, b + k->offset);
		}
	}
}
