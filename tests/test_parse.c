/*
 * test_parse.c — shm/parse.c: durations with and without units, decimal
 * integers (never octal), sizes with K/M/G/T, and refusals for everything
 * else.
 */
#include <stdint.h>
#include <string.h>

#include "shmstat_i.h"
#include "testutil.h"

#define S 1000000000ull

static uint64_t dur(const char *s)
{
	uint64_t ns = 12345;
	assert_int_equal(shmstat__parse_duration(s, 0, UINT64_MAX, &ns),
			 SHMSTAT_PARSE_OK);
	return ns;
}

static void durations_take_every_unit_and_a_fraction(void **state)
{
	(void)state;
	assert_int_equal(dur("250ms"), 250000000ull);
	assert_int_equal(dur("1.5s"), 1500000000ull);
	assert_int_equal(dur("2m"), 120 * S);
	assert_int_equal(dur("2min"), 120 * S);
	assert_int_equal(dur("1h"), 3600 * S);
	assert_int_equal(dur("1d"), 86400 * S);
	assert_int_equal(dur("7us"), 7000ull);
	assert_int_equal(dur("3ns"), 3ull);
	assert_int_equal(dur("0.25h"), 900 * S);
	assert_int_equal(dur(".5s"), 500000000ull);
	assert_int_equal(dur("0"), 0ull);
	assert_int_equal(dur("1.0000000019s"), 1000000001ull); /* cut, not rounded */
}

static void a_bare_number_is_seconds(void **state)
{
	(void)state;
	assert_int_equal(dur("5"), 5 * S);
	assert_int_equal(dur("0.5"), 500000000ull);
	assert_int_equal(dur("010"), 10 * S);
}

static void malformed_durations_are_refused_and_leave_the_output(void **state)
{
	(void)state;
	const char *bad[] = { "", "s", "-1s", "+1s", "1 s", " 1s", "1s ", "1.s",
			      "1e3", "0x10", "1sec", "1S", "1ms5", "1..5s", "1.5.5s",
			      "5mss", "ms", ".s", "1m30s" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t ns = 42;
		assert_int_equal(shmstat__parse_duration(bad[i], 0, UINT64_MAX, &ns),
				 SHMSTAT_PARSE_SYNTAX);
		assert_int_equal(ns, 42);
	}
	uint64_t ns = 42;
	assert_int_equal(shmstat__parse_duration(NULL, 0, UINT64_MAX, &ns),
			 SHMSTAT_PARSE_SYNTAX);
}

static void durations_outside_the_bounds_or_64_bits_are_out_of_range(void **state)
{
	(void)state;
	uint64_t ns = 42;
	assert_int_equal(shmstat__parse_duration("10ms", 50000000, 3600 * S, &ns),
			 SHMSTAT_PARSE_RANGE);
	assert_int_equal(shmstat__parse_duration("2h", 0, 3600 * S, &ns),
			 SHMSTAT_PARSE_RANGE);
	assert_int_equal(shmstat__parse_duration("1000000d", 0, UINT64_MAX, &ns),
			 SHMSTAT_PARSE_RANGE);
	assert_int_equal(shmstat__parse_duration("99999999999999999999999ms", 0,
						 UINT64_MAX, &ns),
			 SHMSTAT_PARSE_RANGE);
	assert_int_equal(ns, 42);
	/* The bounds themselves are inside. */
	assert_int_equal(shmstat__parse_duration("50ms", 50000000, 3600 * S, &ns), 0);
	assert_int_equal(ns, 50000000);
	assert_int_equal(shmstat__parse_duration("1h", 50000000, 3600 * S, &ns), 0);
	assert_int_equal(ns, 3600 * S);
}

static void integers_are_decimal_even_with_a_leading_zero(void **state)
{
	(void)state;
	uint64_t u = 0;
	int64_t i = 0;
	assert_int_equal(shmstat__parse_u64("010", 0, UINT64_MAX, &u), 0);
	assert_int_equal(u, 10);
	assert_int_equal(shmstat__parse_u64("18446744073709551615", 0, UINT64_MAX, &u), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(shmstat__parse_i64("-010", INT64_MIN, INT64_MAX, &i), 0);
	assert_int_equal(i, -10);
	assert_int_equal(shmstat__parse_i64("+7", INT64_MIN, INT64_MAX, &i), 0);
	assert_int_equal(i, 7);
	assert_int_equal(shmstat__parse_i64("-9223372036854775808", INT64_MIN, INT64_MAX, &i), 0);
	assert_true(i == INT64_MIN);
	assert_int_equal(shmstat__parse_i64("9223372036854775807", INT64_MIN, INT64_MAX, &i), 0);
	assert_true(i == INT64_MAX);
}

static void integers_out_of_range_and_non_decimal_are_refused(void **state)
{
	(void)state;
	uint64_t u = 42;
	int64_t i = 42;
	const char *bad[] = { "", "0x10", "1e3", " 1", "1 ", "1.0", "-1", "+1", "ten", "08a" };
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
		assert_int_equal(shmstat__parse_u64(bad[k], 0, UINT64_MAX, &u),
				 SHMSTAT_PARSE_SYNTAX);
	assert_int_equal(shmstat__parse_u64("18446744073709551616", 0, UINT64_MAX, &u),
			 SHMSTAT_PARSE_RANGE);
	assert_int_equal(shmstat__parse_u64("5", 6, 10, &u), SHMSTAT_PARSE_RANGE);
	assert_int_equal(u, 42);
	assert_int_equal(shmstat__parse_i64("9223372036854775808", INT64_MIN, INT64_MAX, &i),
			 SHMSTAT_PARSE_RANGE);
	assert_int_equal(shmstat__parse_i64("-9223372036854775809", INT64_MIN, INT64_MAX, &i),
			 SHMSTAT_PARSE_RANGE);
	assert_int_equal(shmstat__parse_i64("--1", INT64_MIN, INT64_MAX, &i),
			 SHMSTAT_PARSE_SYNTAX);
	assert_int_equal(shmstat__parse_i64("-", INT64_MIN, INT64_MAX, &i),
			 SHMSTAT_PARSE_SYNTAX);
	assert_int_equal(i, 42);
}

static void durations_print_in_the_syntax_they_parse_from(void **state)
{
	(void)state;
	const char *rt[] = { "250ms", "2m", "1h", "1500ms", "7us", "5s" };
	char buf[32];
	for (size_t i = 0; i < sizeof(rt) / sizeof(rt[0]); i++) {
		shmstat__duration_str(buf, sizeof(buf), dur(rt[i]));
		assert_string_equal(buf, rt[i]);
	}
}

static uint64_t size(const char *s)
{
	uint64_t v = 12345;
	assert_int_equal(shmstat__parse_size(s, 0, UINT64_MAX, &v),
			 SHMSTAT_PARSE_OK);
	return v;
}

static void sizes_take_k_m_g_t_as_powers_of_1024(void **state)
{
	(void)state;
	assert_int_equal(size("0"), 0);
	assert_int_equal(size("65536"), 65536);
	assert_int_equal(size("010"), 10);
	assert_int_equal(size("64K"), 65536);
	assert_int_equal(size("64k"), 65536);
	assert_int_equal(size("32M"), 32ull << 20);
	assert_int_equal(size("32MiB"), 32ull << 20);
	assert_int_equal(size("1G"), 1ull << 30);
	assert_int_equal(size("1g"), 1ull << 30);
	assert_int_equal(size("1GiB"), 1ull << 30);
	assert_int_equal(size("2T"), 2ull << 40);
	assert_int_equal(size("16777215T"), 16777215ull << 40);
}

static void malformed_or_too_big_sizes_are_refused_and_leave_the_output(
	void **state)
{
	(void)state;
	const char *bad[] = { "", "K", "1KB", "1kb", "1 K", " 1K", "1K ", "1.5M",
			      "-1", "+1", "1Ki", "1kib", "0x10", "1P", "1e3",
			      "1KK", "1MiBs", "M1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 42;
		assert_int_equal(shmstat__parse_size(bad[i], 0, UINT64_MAX, &v),
				 SHMSTAT_PARSE_SYNTAX);
		assert_int_equal(v, 42);
	}
	const char *big[] = { "16777216T", "18446744073709551616",
			      "99999999999999999999K", "17179869184G" };
	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		uint64_t v = 42;
		assert_int_equal(shmstat__parse_size(big[i], 0, UINT64_MAX, &v),
				 SHMSTAT_PARSE_RANGE);
		assert_int_equal(v, 42);
	}
	uint64_t v = 42;
	assert_int_equal(shmstat__parse_size("2T", 1, 1ull << 40, &v),
			 SHMSTAT_PARSE_RANGE);
	assert_int_equal(shmstat__parse_size("1T", 1, 1ull << 40, &v),
			 SHMSTAT_PARSE_OK);
	assert_int_equal(v, 1ull << 40);
	assert_int_equal(shmstat__parse_size(NULL, 0, 1, &v),
			 SHMSTAT_PARSE_SYNTAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(durations_take_every_unit_and_a_fraction),
		cmocka_unit_test(a_bare_number_is_seconds),
		cmocka_unit_test(malformed_durations_are_refused_and_leave_the_output),
		cmocka_unit_test(durations_outside_the_bounds_or_64_bits_are_out_of_range),
		cmocka_unit_test(integers_are_decimal_even_with_a_leading_zero),
		cmocka_unit_test(integers_out_of_range_and_non_decimal_are_refused),
		cmocka_unit_test(durations_print_in_the_syntax_they_parse_from),
		cmocka_unit_test(sizes_take_k_m_g_t_as_powers_of_1024),
		cmocka_unit_test(
			malformed_or_too_big_sizes_are_refused_and_leave_the_output),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
