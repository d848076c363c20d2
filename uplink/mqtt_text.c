/* MQTT's rules for strings and topics (uplink/mqtt_text.h). */
#include "uplink/mqtt_text.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* MQTT strings carry a two-byte length. */
#define MQTT_STRING_MAX 65535

/* Decodes the UTF-8 sequence at s[*i] (n bytes in all) into *cp and moves *i past it;
 * false for a malformed sequence: a bad lead or continuation byte, a truncated, overlong
 * or surrogate form, or a code point above U+10FFFF. */
static bool utf8_next(const unsigned char *s, size_t n, size_t *i, uint32_t *cp)
{
	static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
	unsigned char c = s[*i];
	int extra;
	uint32_t v;

	if (c < 0x80) {
		*cp = c;
		*i += 1;
		return true;
	}
	if (c >= 0xC2 && c <= 0xDF)
		extra = 1, v = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		extra = 2, v = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		extra = 3, v = c & 0x07;
	else
		return false;
	if (n - *i <= (size_t)extra)
		return false;
	for (int k = 1; k <= extra; k++) {
		if ((s[*i + k] & 0xC0) != 0x80)
			return false;
		v = v << 6 | (s[*i + k] & 0x3F);
	}
	if (v < min[extra] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return false;
	*cp = v;
	*i += (size_t)extra + 1;
	return true;
}

const char *cg_mqtt_text_problem(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	uint32_t cp;

	if (len > MQTT_STRING_MAX)
		return "is longer than MQTT's 65,535 bytes";
	while (i < len) {
		if (!utf8_next(u, len, &i, &cp))
			return "is not valid UTF-8";
		if (cp == 0)
			return "holds a NUL character";
		if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
			return "holds a control character";
		if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE)
			return "holds a Unicode non-character";
	}
	return NULL;
}

const char *cg_mqtt_topic_problem(const char *topic, size_t len)
{
	const char *why;

	if (len == 0)
		return "is empty";
	why = cg_mqtt_text_problem(topic, len);
	if (why)
		return why;
	if (memchr(topic, '+', len) || memchr(topic, '#', len))
		return "holds a wildcard ('+' or '#')";
	if (topic[0] == '$')
		return "starts with '$', which brokers keep for themselves";
	return NULL;
}
