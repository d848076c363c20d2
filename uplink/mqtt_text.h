/* What an MQTT client and broker accept as a string, a topic to publish to and a topic
 * level: the rules --check applies to the config and the sender to every stored topic. */
#ifndef CG_MQTT_TEXT_H
#define CG_MQTT_TEXT_H

#include <stddef.h>

/* The size of every topic buffer the gateway builds topics in, NUL included. */
#define CG_TOPIC_SIZE 512
/* The longest reading kind name allowed for in a topic (cg_kind_names: "air-quality",
 * the longest today, has 11). */
#define CG_KIND_MAX 15
/* The longest topic_prefix with which every topic fits CG_TOPIC_SIZE: the reading topic
 * {prefix}/{gateway}/{kind}/{sensor} with the longest ids (63) and kind is the longest
 * the gateway makes. */
#define CG_TOPIC_PREFIX_MAX (CG_TOPIC_SIZE - 1 - (1 + 63 + 1 + CG_KIND_MAX + 1 + 63))

/* Checks s (len bytes) against MQTT's UTF-8 string rules as a broker applies them
 * (mosquitto): well-formed UTF-8 with no overlong form or surrogate, no NUL, no control
 * character (U+0001 to U+001F, U+007F to U+009F), no non-character, at most 65,535
 * bytes. Returns NULL when valid, else a short message saying what is wrong. */
const char *cg_mqtt_text_problem(const char *s, size_t len);

/* Checks a topic to publish to: a valid MQTT string (above) of at least one byte, no
 * wildcard ('+', '#'), and no leading '$' (brokers keep $SYS and the like to
 * themselves and deny a client's publish there). NULL when valid, else a message. */
const char *cg_mqtt_topic_problem(const char *topic, size_t len);

#endif
