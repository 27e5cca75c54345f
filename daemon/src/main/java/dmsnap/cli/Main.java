package dmsnap.cli;

import dmsnap.ffm.Platform;
import java.io.PrintWriter;
import picocli.CommandLine;

/** Entry point of {@code ./dmsnap}. */
public final class Main {
    private Main() {
    }

    public static void main(String[] args) {
        System.exit(run(args, new PrintWriter(System.out, true), new PrintWriter(System.err, true)));
    }

    /** --help and --version on every subcommand, not only on the top-level command. */
    private static void addHelpOptions(CommandLine command) {
        for (CommandLine sub : command.getSubcommands().values()) {
            if (!sub.getCommandSpec().mixinStandardHelpOptions()) {
                sub.getCommandSpec().mixinStandardHelpOptions(true);
            }
            addHelpOptions(sub);
        }
    }

    /** Runs one command line with the given streams and returns its exit status. */
    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        try {
            Platform.requireSupported();
        } catch (UnsupportedOperationException e) {
            err.println("dmsnap: " + e.getMessage());
            return ExitCodes.UNSUPPORTED_PLATFORM;
        }
        return commandLine(out, err).execute(args);
    }

    /** The command line {@link #run} executes: its streams, exit codes and one-line error handlers. */
    static CommandLine commandLine(PrintWriter out, PrintWriter err) {
        CommandLine cli = new CommandLine(new DmsnapCommand())
                .setOut(out)
                .setErr(err)
                .setExitCodeExceptionMapper(t -> ExitCodes.FAILED);
        addHelpOptions(cli);
        cli.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            commandLine.getErr().println("dmsnap: " + ex.getMessage());
            if (parseResult.hasMatchedOption("--verbose")) {
                ex.printStackTrace(commandLine.getErr());
            }
            return ExitCodes.FAILED;
        });
        cli.setParameterExceptionHandler((ex, args2) -> {
            CommandLine c = ex.getCommandLine();
            c.getErr().println("dmsnap: " + ex.getMessage());
            c.getErr().println("Try '" + c.getCommandSpec().qualifiedName() + " --help' for more information.");
            return ExitCodes.USAGE;
        });
        return cli;
    }
}
