/* us_main.c -- locusfs-mount: the LocusFS using site (see us_mount.h). */
#include "us_mount.h"

int main(int argc, char **argv)
{
        return us_main(argc, argv);
}
