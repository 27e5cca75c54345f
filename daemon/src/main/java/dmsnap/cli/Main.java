package dmsnap.cli;

import dmsnap.ffm.Platform;
import java.io.PrintWriter;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ParseResult;

/** Entry point of {@code ./dmsnap}. */
public final class Main {
    /** Options of the top-level command that the verb declares and uses (see {@link DmsnapCommand}). */
    static final List<String> GLOBAL_OPTIONS = List.of("--run-dir", "--json");
    /** Set (true) by the launcher for the JVM that records the AOT cache: every verb is built. */
    static final String ALL_VERBS_PROPERTY = "dmsnap.cli.allVerbs";

    private Main() {}

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
        return commandLine(out, err, verbsFor(args)).execute(args);
    }

    /**
     * The verbs {@code args} needs: the one it names, after the global options, or all of them
     * (the usage, help asked before the verb, completion, a misspelt verb, a verb given as the
     * value of --run-dir): anything picocli must see whole to answer as it would with every verb.
     * The AOT cache's training daemon builds every verb too ({@value #ALL_VERBS_PROPERTY}), so
     * that their classes are in the cache.
     */
    static List<Class<?>> verbsFor(String[] args) {
        if (Boolean.getBoolean(ALL_VERBS_PROPERTY)) {
            return DmsnapCommand.VERBS;
        }
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--help") || args[i].matches("-[a-zA-Z]*h[a-zA-Z]*")) {
                break; // the top-level usage, which lists every verb
            }
            Class<?> verb = verbNamed(args[i]);
            if (verb != null) {
                return verb == CompletionCommand.class ? DmsnapCommand.VERBS : List.of(verb);
            }
            if (args[i].equals("--run-dir")) {
                if (++i < args.length && verbNamed(args[i]) != null) {
                    break;
                }
            } else if (!args[i].startsWith("-") || args[i].equals("-") || args[i].equals("--")) {
                break;
            }
        }
        return DmsnapCommand.VERBS;
    }

    private static Class<?> verbNamed(String arg) {
        for (Class<?> verb : DmsnapCommand.VERBS) {
            Command command = verb.getAnnotation(Command.class);
            if (command.name().equals(arg) || List.of(command.aliases()).contains(arg)) {
                return verb;
            }
        }
        return null;
    }

    /** The whole command line, every verb: for the docs and the tests that run many commands. */
    static CommandLine commandLine(PrintWriter out, PrintWriter err) {
        return commandLine(out, err, DmsnapCommand.VERBS);
    }

    /** The command line {@link #run} executes: its verbs, streams, exit codes and one-line error handlers. */
    static CommandLine commandLine(PrintWriter out, PrintWriter err, List<Class<?>> verbs) {
        CommandLine cli = new CommandLine(new DmsnapCommand());
        for (Class<?> verb : verbs) {
            cli.addSubcommand(verb); // before the settings below, which reach only the subcommands there
        }
        cli.setOut(out).setErr(err).setExitCodeExceptionMapper(ExitCodes::of);
        addHelpOptions(cli);
        cli.setExecutionStrategy(parseResult -> {
            Integer help = CommandLine.executeHelpRequest(parseResult);
            if (help != null) {
                return help;
            }
            forwardGlobalOptions(parseResult);
            return new CommandLine.RunLast().execute(parseResult);
        });
        cli.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            commandLine.getErr().println("dmsnap: " + ex.getMessage());
            if (matchedAnywhere(parseResult, "--verbose")) {
                ex.printStackTrace(commandLine.getErr());
            }
            return ExitCodes.of(ex);
        });
        cli.setParameterExceptionHandler((ex, args2) -> {
            CommandLine c = ex.getCommandLine();
            c.getErr().println("dmsnap: " + ex.getMessage());
            c.getErr().println("Try '" + c.getCommandSpec().qualifiedName() + " --help' for more information.");
            return ExitCodes.USAGE;
        });
        return cli;
    }

    /**
     * A global option given before the verb becomes the verb's own option, as if given after it:
     * the same value, the same checks in the verb, the same refusal of a second occurrence. A verb
     * without that option refuses it, as it does after the verb.
     */
    static void forwardGlobalOptions(ParseResult top) {
        ParseResult verb = top;
        while (verb.hasSubcommand()) {
            verb = verb.subcommand();
        }
        if (verb == top) {
            return; // no verb: the top-level command prints its usage
        }
        CommandSpec spec = verb.commandSpec();
        for (String name : GLOBAL_OPTIONS) {
            OptionSpec given = top.matchedOption(name);
            if (given == null) {
                continue;
            }
            OptionSpec own = spec.findOption(name);
            if (own == null) {
                throw new ParameterException(
                        spec.commandLine(), "option '" + name + "' does not apply to '" + spec.qualifiedName() + "'");
            }
            if (verb.hasMatchedOption(name)) {
                // picocli's words for an option given twice after the verb
                throw new ParameterException(
                        spec.commandLine(),
                        "option '" + name + "' " + (own.arity().max() == 0 ? "" : "(" + own.paramLabel() + ") ")
                                + "should be specified only once");
            }
            own.setValue(given.getValue());
        }
    }

    /** Whether {@code name} was given to the top-level command, a command group or the verb. */
    private static boolean matchedAnywhere(ParseResult parseResult, String name) {
        for (ParseResult r = parseResult; r != null; r = r.subcommand()) {
            if (r.hasMatchedOption(name)) {
                return true;
            }
        }
        return false;
    }
}
