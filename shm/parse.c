/*
 * parse.c — the numbers people type on a command line or in an
 * environment file: durations and decimal integers, one syntax for the
 * shmstat tool and shmstat-bridge.
 *
 * A duration is a decimal number, optionally with a fraction, and a unit:
 * ns, us, ms, s, m (or min), h, d; "250ms", "1.5s", "2m", "1h". A bare
 * number is seconds (as in systemd.time(7) and sleep(1)). No sign, no
 * exponent, no spaces: what is not exactly this is refused rather than
 * guessed at. Integers are decimal only: "010" is ten, never octal (a
 * leading zero is what a user pads with, not what they mean as base 8).
 * Every result is exact in uint64_t nanoseconds or refused as out of range.
 * A size is decimal digits and optionally K, M, G or T (KiB ... TiB too),
 * 1024-based, as sizes of memory are: "64K", "32M", "1G".
 */
#include <stdint.h>
#include <string.h>

#include "shmstat_i.h"

#define NS_PER_S 1000000000ull

/* Digits [s, end) into *v; false on overflow or when there are none. */
static bool digits(const char **p, uint64_t *v, int *n)
{
	uint64_t x = 0;
	int k = 0;

	while (**p >= '0' && **p <= '9') {
		unsigned d = (unsigned)(**p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
		(*p)++;
		k++;
	}
	*v = x;
	*n = k;
	return true;
}

int shmstat__parse_u64(const char *s, uint64_t min, uint64_t max,
		       uint64_t *out)
{
	uint64_t v;
	int n;

	if (!s)
		return SHMSTAT_PARSE_SYNTAX;
	const char *p = s;
	if (*p < '0' || *p > '9')
		return SHMSTAT_PARSE_SYNTAX;
	if (!digits(&p, &v, &n)) {
		/* All digits but too many: out of range, not a typo. */
		while (*p >= '0' && *p <= '9')
			p++;
		return *p ? SHMSTAT_PARSE_SYNTAX : SHMSTAT_PARSE_RANGE;
	}
	if (*p)
		return SHMSTAT_PARSE_SYNTAX;
	if (v < min || v > max)
		return SHMSTAT_PARSE_RANGE;
	*out = v;
	return SHMSTAT_PARSE_OK;
}

int shmstat__parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	bool neg = false;
	uint64_t v;
	int rc;

	if (!s)
		return SHMSTAT_PARSE_SYNTAX;
	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	rc = shmstat__parse_u64(s, 0, UINT64_MAX, &v);
	if (rc < 0)
		return rc;
	int64_t x;
	if (neg) {
		if (v > (uint64_t)INT64_MAX + 1)
			return SHMSTAT_PARSE_RANGE;
		x = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	} else {
		if (v > (uint64_t)INT64_MAX)
			return SHMSTAT_PARSE_RANGE;
		x = (int64_t)v;
	}
	if (x < min || x > max)
		return SHMSTAT_PARSE_RANGE;
	*out = x;
	return SHMSTAT_PARSE_OK;
}

int shmstat__parse_size(const char *s, uint64_t min, uint64_t max,
			uint64_t *out)
{
	static const char mult[] = "KMGT";
	uint64_t v;
	int n, shift = 0;

	if (!s || *s < '0' || *s > '9')
		return SHMSTAT_PARSE_SYNTAX;
	const char *p = s;
	bool big = !digits(&p, &v, &n);
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p) {
		char u = *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
		const char *m = strchr(mult, u);
		if (!m || !u)
			return SHMSTAT_PARSE_SYNTAX;
		shift = 10 * (int)(m - mult + 1);
		p++;
		if (strcmp(p, "iB") == 0)
			p += 2;
		if (*p)
			return SHMSTAT_PARSE_SYNTAX;
	}
	/* Too many digits, or too big with its unit: out of range, not a
	 * typo. */
	if (big || v > UINT64_MAX >> shift)
		return SHMSTAT_PARSE_RANGE;
	v <<= shift;
	if (v < min || v > max)
		return SHMSTAT_PARSE_RANGE;
	*out = v;
	return SHMSTAT_PARSE_OK;
}

static const struct unit {
	const char *name;
	uint64_t ns;
} units[] = {
	{ "ns", 1 },
	{ "us", 1000 },
	{ "ms", 1000000 },
	{ "s", NS_PER_S },
	{ "m", 60 * NS_PER_S },
	{ "min", 60 * NS_PER_S },
	{ "h", 3600 * NS_PER_S },
	{ "d", 86400 * NS_PER_S },
	{ "", NS_PER_S }, /* a bare number: seconds */
};

int shmstat__parse_duration(const char *s, uint64_t min_ns, uint64_t max_ns,
			    uint64_t *out_ns)
{
	uint64_t whole, frac = 0;
	int n, nf = 0;

	if (!s)
		return SHMSTAT_PARSE_SYNTAX;
	const char *p = s;
	if ((*p < '0' || *p > '9') && !(*p == '.' && p[1] >= '0' && p[1] <= '9'))
		return SHMSTAT_PARSE_SYNTAX;
	bool big = !digits(&p, &whole, &n);
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return SHMSTAT_PARSE_SYNTAX; /* "1." */
		/* Nine digits are a nanosecond of a second; more are cut. */
		while (*p >= '0' && *p <= '9') {
			if (nf < 9) {
				frac = frac * 10 + (uint64_t)(*p - '0');
				nf++;
			}
			p++;
		}
	}
	for (; nf < 9; nf++)
		frac *= 10; /* frac is now billionths of the unit */
	const struct unit *u = NULL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(p, units[i].name) == 0)
			u = &units[i];
	if (!u)
		return SHMSTAT_PARSE_SYNTAX;
	if (big || whole > UINT64_MAX / u->ns)
		return SHMSTAT_PARSE_RANGE;
	uint64_t ns = whole * u->ns;
	/* The fraction's share: exact for units of whole seconds, cut below
	 * a nanosecond for the smaller ones (frac * u->ns fits: < 1e15). */
	uint64_t part = u->ns >= NS_PER_S ? frac * (u->ns / NS_PER_S)
					  : frac * u->ns / NS_PER_S;
	if (ns > UINT64_MAX - part)
		return SHMSTAT_PARSE_RANGE;
	ns += part;
	if (ns < min_ns || ns > max_ns)
		return SHMSTAT_PARSE_RANGE;
	*out_ns = ns;
	return SHMSTAT_PARSE_OK;
}

void shmstat__duration_str(char *buf, size_t len, uint64_t ns)
{
	static const struct unit show[] = {
		{ "h", 3600 * NS_PER_S }, { "m", 60 * NS_PER_S },
		{ "s", NS_PER_S },        { "ms", 1000000 },
		{ "us", 1000 },
	};
	for (size_t i = 0; i < sizeof(show) / sizeof(show[0]); i++)
		if (ns >= show[i].ns && ns % show[i].ns == 0) {
			snprintf(buf, len, "%llu%s",
				 (unsigned long long)(ns / show[i].ns), show[i].name);
			return;
		}
	if (ns >= NS_PER_S)
		snprintf(buf, len, "%.3gs", (double)ns / 1e9);
	else
		snprintf(buf, len, "%lluns", (unsigned long long)ns);
}
