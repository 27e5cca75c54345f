package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Model.PositionalParamSpec;

/** The man pages and the completion script the build generates ({@link CliDocs}) cover every command. */
class CliDocsTest {
    @TempDir
    Path tmp;

    /** Every command and subcommand of the CLI, each once (aliases such as reload are the same command). */
    private static List<CommandSpec> allCommands() {
        Set<CommandSpec> all = new LinkedHashSet<>();
        List<CommandLine> todo = new ArrayList<>(List.of(CliDocs.model()));
        while (!todo.isEmpty()) {
            CommandLine c = todo.removeFirst();
            if (all.add(c.getCommandSpec())) {
                todo.addAll(c.getSubcommands().values());
            }
        }
        return List.copyOf(all);
    }

    @Test
    void thereIsAManPageForEveryCommandWithItsOptionsAndArguments() throws Exception {
        CliDocs.manPages(tmp);
        List<CommandSpec> commands = allCommands();
        assertTrue(commands.size() >= 25, "commands found: " + commands.size());
        for (CommandSpec command : commands) {
            String page = command.qualifiedName("-");
            Path file = tmp.resolve(page + ".adoc");
            assertTrue(Files.exists(file), "no man page for '" + command.qualifiedName() + "': " + file);
            String text = Files.readString(file);
            assertTrue(text.contains("= " + page + "(1)"), page + " has its title");
            assertTrue(text.contains(":mansource: dmsnap "), page + " names its source");
            for (OptionSpec option : command.options()) {
                assertTrue(
                        text.contains("*" + option.longestName() + "*"), page + " documents " + option.longestName());
            }
            for (PositionalParamSpec parameter : command.positionalParameters()) {
                assertTrue(text.contains(parameter.paramLabel()), page + " documents " + parameter.paramLabel());
            }
            for (String sub : command.subcommands().keySet()) {
                assertTrue(text.contains(sub), page + " lists its subcommand " + sub);
            }
        }
        try (var files = Files.list(tmp)) {
            assertEquals(commands.size(), files.count(), "one page per command, no more");
        }
        String top = Files.readString(tmp.resolve("dmsnap.adoc"));
        assertTrue(top.contains("before or after the verb"), "the top-level page says where global options go");
        assertTrue(top.contains("Exit status:") && top.contains("*6*::"), "the top-level page lists the exit statuses");
        String create = Files.readString(tmp.resolve("dmsnap-snapshot-create.adoc"));
        assertTrue(create.contains("== Examples"), "a verb's page has its examples");
        assertTrue(
                create.contains("dmsnap-snapshot-create - Create a snapshot of an origin device\n"),
                "the NAME line is the description's first clause");
    }

    @Test
    void theCompletionScriptIsSourcedByBashAndCompletesTheVerbs() throws Exception {
        Path script = tmp.resolve("completion/dmsnap");
        CliDocs.completion(script);
        assertEquals(CliRunner.run("completion").out(), Files.readString(script), "the same as `dmsnap completion`");
        Process bash = new ProcessBuilder(
                        "bash",
                        "-c",
                        "source \"$1\" && complete -p dmsnap"
                                // what bash offers after "dmsnap snapshot cr" and after "dmsnap --run"
                                + " && COMP_WORDS=(dmsnap snapshot cr) COMP_CWORD=2 && _complete_dmsnap 2>/dev/null; echo \"${COMPREPLY[*]}\""
                                + " && COMP_WORDS=(dmsnap --run) COMP_CWORD=1 && _complete_dmsnap 2>/dev/null; echo \"${COMPREPLY[*]}\"",
                        "bash",
                        script.toString())
                .redirectErrorStream(true)
                .start();
        assertTrue(bash.waitFor(60, TimeUnit.SECONDS), "bash finished");
        String out = new String(bash.getInputStream().readAllBytes());
        assertEquals(0, bash.exitValue(), out);
        List<String> lines = out.lines().toList();
        assertTrue(lines.getFirst().startsWith("complete ") && lines.getFirst().contains(" -F _complete_dmsnap "), out);
        assertTrue(lines.getFirst().endsWith(" dmsnap"), out);
        assertEquals("create", lines.get(1).trim(), out);
        assertEquals("--run-dir", lines.get(2).trim(), out);
    }
}
