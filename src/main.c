/*
 * main.c - intersect-etl's entry point: everything is in the library (cli.c).
 */
#include "cli.h"

int main(int argc, char **argv)
{
	return cli_main(argc, argv);
}
