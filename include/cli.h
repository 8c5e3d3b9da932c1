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

#endif
