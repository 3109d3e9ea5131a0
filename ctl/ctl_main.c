/*
 * ctl_main.c -- locusctl, the administration command of LocusFS: dispatch
 * to the commands (ctl.h).  See locusctl(8).
 *
 * Exit status: 0 success; 1 failure (the message says which program, file
 * or site, and why); 2 bad command line; status: 3 when not everything is
 * up.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static void usage(FILE *f)
{
        fprintf(f,
                "usage: locusctl COMMAND ...\n"
                "  dev up DIR [--state PATH] [--sites N] [--addrs A,B,...] [--timeout SEC] [--force]\n"
                "                                                          start (or restart) a cluster and\n"
                "                                                          mount it at DIR (N > 1: site k on\n"
                "                                                          127.0.0.k, mounted at DIR/sk)\n"
                "                                                          (--force: DIR need not be empty)\n"
                "  dev down DIR [--state PATH] [--timeout SEC]             unmount, stop the daemons\n"
                "  dev partition DIR SPEC [--state PATH]                   cut the sites apart (SPEC: 1,2/3;\n"
                "                                                          nftables, root)\n"
                "  dev heal DIR [--state PATH]                             remove the cut\n"
                "  status [--state PATH] [--json]                          programs, mount, file groups,\n"
                "                                                          storage statistics\n"
                "  fg create NAME --mount PATH [--copies N] [--sync-copies S] [--sites A,B,...] [--state PATH] [--json]\n"
                "            [--timeout SEC]                               a new file group mounted at PATH,\n"
                "                                                          held by N sites\n"
                "  fg list [--state PATH] [--json]                         the mount table\n"
                "  fg set NAME --sync-copies S [--state PATH]              fsync durable on S copies\n"
                "  sites [--state PATH] [--json] [--site K]                the sites: address, up or down,\n"
                "                                                          membership (epoch, members, up /\n"
                "                                                          suspect / down), last contact, file\n"
                "                                                          groups; --site K: site K's own view\n"
                "  sync [--state PATH] [--timeout SEC]                     wait until every copy reachable\n"
                "                                                          is current (exit 1 after SEC)\n"
                "  copies PATH [--tree] [--state PATH] [--json]            every copy of a file (PATH from the\n"
                "                                                          cluster's root): vector, size, hash\n"
                "                                                          (--tree: every file under PATH)\n"
                "  replicas add|remove FG|PATH SITE [--state PATH] [--timeout SEC]\n"
                "                                                          make a copy of a file group at\n"
                "                                                          SITE and wait until it is current,\n"
                "                                                          or delete SITE's copy (never the\n"
                "                                                          last); rerun to finish\n"
                "  replicas set PATH N [-r] [--sites A,B,...] [--state PATH] [--timeout SEC]\n"
                "                                                          the copies policy of PATH (and,\n"
                "                                                          -r, all below): N data copies;\n"
                "                                                          waits until they are placed\n"
                "  site init --addr ADDR [--dir DIR] [--css-port P] [--storage-port P]\n"
                "                                                          a new cluster: key, site.conf of\n"
                "                                                          site 1, the root file group\n"
                "  site join CSS-HOST:PORT --key FILE --addr ADDR [--dir DIR] [--id N] [--css-port P] [--storage-port P]\n"
                "                                                          another site of that cluster\n"
                "fg list, fg create and sites take --config FILE (a site.conf) instead of --state for a\n"
                "cluster made with site init.\n"
                "  fsck --rebuild [--state PATH]                           rebuild the storage site's SQLite\n"
                "                                                          from its segments\n"
                "The state directory is --state, else $LOCUS_STATE_DIR, else /var/lib/locusfs/dev (root)\n"
                "or ~/.local/state/locusfs/dev.  See locusctl(8).\n");
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
                usage(stdout);
                return 0;
        }
        if (!strcmp(argv[1], "--version")) {
                printf("locusctl (LocusFS) 0.1.0\n");
                return 0;
        }
        /* stdout is read by people and scripts alike: line by line, in order with stderr */
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (!strcmp(argv[1], "dev"))
                return ctl_cmd_dev(argc - 1, argv + 1);
        if (!strcmp(argv[1], "status"))
                return ctl_cmd_status(argc - 1, argv + 1);
        if (!strcmp(argv[1], "fg"))
                return ctl_cmd_fg(argc - 1, argv + 1);
        if (!strcmp(argv[1], "site"))
                return ctl_cmd_site(argc - 1, argv + 1);
        if (!strcmp(argv[1], "sites"))
                return ctl_cmd_sites(argc - 1, argv + 1);
        if (!strcmp(argv[1], "copies"))
                return ctl_cmd_copies(argc - 1, argv + 1);
        if (!strcmp(argv[1], "replicas"))
                return ctl_cmd_replicas(argc - 1, argv + 1);
        if (!strcmp(argv[1], "sync"))
                return ctl_cmd_sync(argc - 1, argv + 1);
        if (!strcmp(argv[1], "fsck"))
                return ctl_cmd_fsck(argc - 1, argv + 1);
        fprintf(stderr, "locusctl: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
}
