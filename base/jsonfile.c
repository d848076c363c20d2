/* JSON files: read whole, parsed with the place of a syntax error, and paths relative to them. */
#include "base/jsonfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"

int cg_file_read(const char *path, size_t max, char **text, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf, *grown;
	ssize_t r;
	int fd, err, rc = CG_ENOENT;

	*text = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return CG_ENOENT;
	buf = malloc(cap);
	if (!buf) {
		rc = CG_ENOMEM;
		errno = ENOMEM;
		goto cleanup_fd;
	}
	for (;;) {
		if (n + 1 == cap) {
			grown = cap > max ? NULL : realloc(buf, cap * 2);
			if (!grown) {
				rc = cap > max ? CG_ENOENT : CG_ENOMEM;
				errno = cap > max ? EFBIG : ENOMEM;
				goto cleanup_buf;
			}
			buf = grown;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto cleanup_buf;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n > max) {
		free(buf);
		errno = EFBIG;
		return CG_ENOENT;
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;

cleanup_buf:
	err = errno;
	free(buf);
	errno = err;
cleanup_fd:
	err = errno;
	close(fd);
	errno = err;
	return rc;
}

void cg_json_position(const char *text, size_t offset, char *buf, size_t size)
{
	size_t line = 1, column = 1;

	for (size_t i = 0; i < offset; i++) {
		if (text[i] == '\n') {
			line++;
			column = 1;
		} else if (((unsigned char)text[i] & 0xC0) != 0x80) {
			column++;
		}
	}
	snprintf(buf, size, "line %zu column %zu", line, column);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

cJSON *cg_json_parse(const char *text, size_t len, const char *file, cg_diag_t *diag)
{
	const char *end = NULL;
	char where[64];
	cJSON *root;
	size_t i;

	for (i = 0; i < len && is_space(text[i]); i++)
		;
	if (i == len) {
		cg_diag_add(diag, file, "", "the file is empty");
		return NULL;
	}
	/* The end pointer is what cJSON_GetErrorPtr() would give, without the
	 * global that other threads may overwrite. */
	root = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (root && end) {
		for (i = (size_t)(end - text); i < len && is_space(text[i]); i++)
			;
		if (i < len) {
			cJSON_Delete(root);
			root = NULL;
			end = text + i;
		}
	}
	if (!root) {
		if (!end || end < text || end > text + len)
			end = text;
		cg_json_position(text, (size_t)(end - text), where, sizeof(where));
		cg_diag_add(diag, file, where, "malformed JSON");
		return NULL;
	}
	if (!cJSON_IsObject(root)) {
		cg_diag_add(diag, file, "", "must be an object");
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

char *cg_path_resolve(const char *anchor, const char *path)
{
	const char *slash = anchor ? strrchr(anchor, '/') : NULL;
	size_t dir_len, len;
	char *out;

	if (path[0] == '/' || !slash)
		return strdup(path);
	dir_len = (size_t)(slash - anchor) + 1;
	len = strlen(path) + 1;
	out = malloc(dir_len + len);
	if (!out)
		return NULL;
	memcpy(out, anchor, dir_len);
	memcpy(out + dir_len, path, len);
	return out;
}
