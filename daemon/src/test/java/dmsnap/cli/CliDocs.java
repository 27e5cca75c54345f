package dmsnap.cli;

import java.io.File;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.IntStream;
import picocli.AutoComplete;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.UsageMessageSpec;
import picocli.codegen.docgen.manpage.ManPageGenerator;

/**
 * Build-time generator, run by the daemon build at {@code package} (exec-maven-plugin): from the
 * picocli model the CLI runs with ({@link Main#commandLine}), one AsciiDoc man page per command
 * ({@code dmsnap.adoc}, {@code dmsnap-create.adoc}, {@code dmsnap-snapshot-create.adoc}, ...;
 * {@code packaging/manpages.sh} turns them into roff) and the bash completion script. It lives
 * with the tests so that picocli-codegen never reaches the application's module path.
 */
public final class CliDocs {
    private CliDocs() {}

    /** {@code CliDocs MAN_DIR COMPLETION_FILE}. */
    public static void main(String[] args) throws IOException {
        if (args.length != 2) {
            throw new IllegalArgumentException("usage: CliDocs MAN_DIR COMPLETION_FILE");
        }
        manPages(Path.of(args[0]));
        completion(Path.of(args[1]));
    }

    /** The command line the CLI runs with; output is discarded (nothing runs). */
    static CommandLine model() {
        PrintWriter nowhere = new PrintWriter(Writer.nullWriter());
        CommandLine cli = Main.commandLine(nowhere, nowhere);
        String version = "dmsnap " + VersionProvider.version();
        setVersion(cli, version);
        return cli;
    }

    /** The pages' source line (".TH ... dmsnap 0.1.0"): every page, not only the top-level one. */
    private static void setVersion(CommandLine command, String version) {
        CommandSpec spec = command.getCommandSpec();
        spec.versionProvider(null);
        spec.version(version);
        command.getSubcommands().values().forEach(sub -> setVersion(sub, version));
    }

    /** One AsciiDoc page per command and subcommand into {@code dir}. */
    static void manPages(Path dir) throws IOException {
        Files.createDirectories(dir);
        try (var old = Files.newDirectoryStream(dir, "*.adoc")) {
            for (Path page : old) {
                Files.delete(page); // a command that is gone takes its page with it
            }
        }
        CommandLine model = model();
        manPageSections(model);
        int status = ManPageGenerator.generateManPage(
                dir.toFile(), (File) null, new boolean[0], false, model.getCommandSpec());
        if (status != CommandLine.ExitCode.OK) {
            throw new IOException("man page generation into " + dir + " failed with status " + status);
        }
    }

    /**
     * The NAME line is the first clause of the description ("dmsnap-snapshot-create - Create a
     * snapshot of an origin device"), not its first wrapped line. A help footer ("", "Example:",
     * "  dmsnap ...") becomes the page's EXAMPLES section (picocli writes a footer only under a
     * heading); a note before the examples joins the description.
     */
    private static void manPageSections(CommandLine command) {
        UsageMessageSpec usage = command.getCommandSpec().usageMessage();
        if (usage.header().length == 0 && usage.description().length > 0) {
            String first = usage.description()[0];
            Matcher clause = Pattern.compile("[:;.](\\s|$)|,$").matcher(first);
            usage.header(clause.find() ? first.substring(0, clause.start()) : first);
        }
        List<String> footer = List.of(usage.footer());
        int examples = IntStream.range(0, footer.size())
                .filter(i -> footer.get(i).equals("Example:") || footer.get(i).equals("Examples:"))
                .findFirst()
                .orElse(-1);
        if (examples >= 0) {
            List<String> description = new ArrayList<>(List.of(usage.description()));
            footer.subList(0, examples).stream().filter(line -> !line.isBlank()).forEach(description::add);
            usage.description(description.toArray(String[]::new));
            usage.footerHeading("Examples");
            usage.footer(footer.subList(examples + 1, footer.size()).toArray(String[]::new));
        }
        command.getSubcommands().values().forEach(CliDocs::manPageSections);
    }

    /** The bash (and zsh, via bashcompinit) completion script for {@code dmsnap}. */
    static void completion(Path file) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        Files.writeString(file, AutoComplete.bash("dmsnap", model()));
    }
}
