/*
 * slot.c — Redis Cluster's key slots: the slot of a key (CRC16 with the
 * hash-tag rule, as Redis' keyHashSlot) and, per slot, a short hash tag
 * that maps to it, for the bookkeeping keys of that slot's partition
 * (push.c).
 */
#include <stdint.h>
#include <string.h>

#include "bridge_i.h"

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0. */
static uint16_t crc16(const unsigned char *p, size_t len)
{
	uint16_t crc = 0;

	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021)
					   : (uint16_t)(crc << 1);
	}
	return crc;
}

unsigned slot_of(const void *key, size_t len)
{
	const unsigned char *k = key;
	const unsigned char *o = memchr(k, '{', len);

	if (o) {
		size_t s = (size_t)(o - k) + 1;
		const unsigned char *c = memchr(k + s, '}', len - s);
		/* Only a non-empty tag counts: "{}x" hashes all of it. */
		if (c && c > k + s)
			return crc16(k + s, (size_t)(c - (k + s))) &
			       (SLOT_COUNT - 1);
	}
	return crc16(k, len) & (SLOT_COUNT - 1);
}

/* The first string, in order of length then of [0-9a-z], of each slot:
 * made once (every slot has one of at most 4 characters). */
static char tags[SLOT_COUNT][5];
static int tags_made;

static void make_tags(void)
{
	static const char al[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	unsigned left = SLOT_COUNT;
	char s[5];

	for (int len = 1; len <= 4 && left; len++) {
		unsigned n = 1;
		for (int i = 0; i < len; i++)
			n *= 36;
		for (unsigned v = 0; v < n && left; v++) {
			unsigned w = v;
			for (int i = len - 1; i >= 0; i--) {
				s[i] = al[w % 36];
				w /= 36;
			}
			s[len] = '\0';
			unsigned sl = crc16((const unsigned char *)s,
					    (size_t)len) & (SLOT_COUNT - 1);
			if (!tags[sl][0]) {
				memcpy(tags[sl], s, (size_t)len + 1);
				left--;
			}
		}
	}
	tags_made = 1;
}

const char *slot_tag(unsigned slot)
{
	if (!tags_made)
		make_tags();
	return tags[slot & (SLOT_COUNT - 1)];
}
