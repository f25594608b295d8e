/*
 * expo.h — parse a Prometheus text exposition in a test, failing the test
 * on the first line that breaks the format's rules.
 */
#ifndef SHMSTAT_TEST_EXPO_H
#define SHMSTAT_TEST_EXPO_H

#include <stdbool.h>
#include <stddef.h>

struct sample {
	char name[512];
	char labels[2048]; /* canonical: k="v",k="v" as written */
	char label_name[1024]; /* value of the name="" label, unescaped */
	double value;
};

struct expo {
	struct sample s[4096];
	int n;
	char types[512][512]; /* family -> type, in order of TYPE lines */
	char type_of[512][16];
	int nfam;
	char helps[512][512]; /* families with a HELP line */
	int nhelp;
};

/* Parse doc into *e (fails the test on a broken line). */
void expo_parse(const char *doc, struct expo *e);
/* Is s[0..len) well-formed UTF-8? */
bool expo_utf8_ok(const char *s, size_t len);
/* Index of a family's TYPE line, -1 when none. */
int expo_family(struct expo *e, const char *name);
/* The first sample of metric (with that name="" label when not NULL). */
const struct sample *expo_find(const struct expo *e, const char *metric,
			       const char *name_label);

/* The series of user counter `name`: by its name label, or by its metric
 * when it needs none. */
const struct sample *expo_user_counter(const struct expo *e, const char *name);

#endif
