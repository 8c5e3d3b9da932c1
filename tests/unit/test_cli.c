/*
 * test_cli.c - what cli.c does to the process before it parses anything.
 *
 * The options themselves are tested on the real binary
 * (tests/integration/test_cli.py, test_secrets.py); here, that once
 * cli_no_core_dumps() has run no core file can be written, not even after
 * raising the soft limit, and the process is not dumpable (so no other
 * process of the same user reads its memory or environment).
 */
#include "cli.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"

int main(void)
{
	struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};

	CHECK(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1); /* the default, or this proves nothing */
	cli_no_core_dumps();
	CHECK(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0);
	CHECK(getrlimit(RLIMIT_CORE, &rl) == 0);
	CHECK_INT(rl.rlim_cur, 0);
	CHECK_INT(rl.rlim_max, 0);
	rl.rlim_cur = 1024 * 1024; /* the hard limit is 0: an unprivileged raise fails */
	if (geteuid() != 0)
		CHECK(setrlimit(RLIMIT_CORE, &rl) != 0);
	return check_summary();
}
