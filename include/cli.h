/*
 * cli.h - the command line of intersect-etl.
 *
 * cli.c owns parsing (getopt_long), the --help texts, and calling one stage
 * entry point per subcommand. It returns the process exit status (enum
 * etl_exit) and prints the error message of a failed command on stderr, so
 * main() is a single call.
 */
#ifndef INTERSECT_CLI_H
#define INTERSECT_CLI_H

int cli_main(int argc, char **argv);

/*
 * Turns core dumps off for good (RLIMIT_CORE 0, soft and hard) and marks the
 * process not dumpable. cli_main() calls it first: from exec on, the process
 * holds the API token and the database password (the job file, DATABASE_URL
 * in the environment), and a core file or a same-user reader of /proc/PID/mem
 * would have them in the clear. Wiping buffers after use cannot cover a
 * crash in the middle of a run.
 */
void cli_no_core_dumps(void);

#endif
