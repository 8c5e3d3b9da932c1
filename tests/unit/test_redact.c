/*
 * test_redact.c - cutting credentials out of outside text, as a table: the
 * text, what must remain; plus the registry's rules (short secrets, JSON
 * spellings, clearing) and a body with NULs and many hits.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "redact.h"
#include "util.h"

struct redact_case {
	const char *in, *want;
};

static const struct redact_case cases[] = {
	{"", ""},
	{"no secret here", "no secret here"},
	{"sk-aisa-K3y/Pw", "***"},
	{"Invalid key sk-aisa-K3y/Pw.", "Invalid key ***."},
	{"Bearer sk-aisa-K3y/Pw and again sk-aisa-K3y/Pw", "Bearer *** and again ***"},
	{"sk-aisa-K3y/Pwsk-aisa-K3y/Pw", "******"},
	/* the JSON encoder's spelling of the '/' in it */
	{"{\"status_message\":\"key sk-aisa-K3y\\/Pw\"}", "{\"status_message\":\"key ***\"}"},
	/* a prefix or a near miss is not the secret */
	{"sk-aisa-K3y/P", "sk-aisa-K3y/P"},
	{"sk-aisa-k3y/Pw", "sk-aisa-k3y/Pw"},
	/* the database password, registered too */
	{"password \"hunter2!\" rejected", "password \"***\" rejected"},
	{"xhunter2!hunter2!x", "x******x"},
};

int main(void)
{
	size_t i;

	redact_add("sk-aisa-K3y/Pw");
	redact_add("hunter2!");
	redact_add("sk-aisa-K3y/Pw"); /* twice: harmless */
	redact_add("abc");            /* shorter than REDACT_MIN_LEN: ignored */
	redact_add(NULL);
	for (i = 0; i < ETL_ARRAY_LEN(cases); i++) {
		char *s = xstrdup(cases[i].in);
		int changed = redact_str(s);

		CHECK_STR(s, cases[i].want);
		CHECK_INT(changed, strcmp(cases[i].in, cases[i].want) != 0);
		free(s);
	}
	{
		char s[] = "abc abcd";

		CHECK_INT(redact_str(s), 0);
		CHECK_STR(s, "abc abcd");
	}
	/* a body with NULs in it, the secret around them; length shrinks */
	{
		char body[] = "A\0sk-aisa-K3y/Pw\0B hunter2!";
		size_t len = sizeof(body) - 1;
		size_t n = redact(body, len);

		CHECK_INT(n, len - strlen("sk-aisa-K3y/Pw") - strlen("hunter2!") + 6);
		CHECK(memcmp(body, "A\0***\0B ***", n) == 0);
	}
	/* many hits in a large buffer, none missed at the seams */
	{
		struct strbuf sb;
		size_t k, n;

		sb_init(&sb);
		for (k = 0; k < 10000; k++)
			sb_puts(&sb, k % 2 ? "..hunter2!" : "sk-aisa-K3y/Pw");
		n = redact(sb.data, sb.len);
		CHECK_INT(n, 5000 * 3 + 5000 * 5);
		CHECK(memmem(sb.data, n, "hunter2", 7) == NULL);
		CHECK(memmem(sb.data, n, "sk-aisa", 7) == NULL);
		sb_free(&sb);
	}
	CHECK_INT(redact(NULL, 0), 0);
	/* once cleared, nothing is cut */
	redact_clear();
	{
		char s[] = "sk-aisa-K3y/Pw";

		CHECK_INT(redact_str(s), 0);
		CHECK_STR(s, "sk-aisa-K3y/Pw");
	}
	return check_summary();
}
