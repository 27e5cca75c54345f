/**
 * The {@code dmsnap} command line (picocli): {@link dmsnap.cli.DmsnapCommand} with its
 * subcommands, and {@link dmsnap.cli.ExitCodes}, the one place that maps failures to exit
 * statuses. Commands print what dmsetup prints; errors are one line on stderr.
 */
package dmsnap.cli;
