package dmsnap.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.StringWriter;
import java.lang.module.ModuleDescriptor;
import java.lang.module.ResolvedModule;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The README's "Embedding the engine" example compiles against the engine alone: a module that
 * {@code requires dmsnap.engine}, on a module path of only the engine, the store, the bindings,
 * the generated bindings and slf4j-api. A daemon class in the example, or a CLI, JSON or metrics
 * library the engine came to need, fails it.
 */
class ReadmeExampleTest {
    /** What an embedder's module path holds: the engine and what it requires, nothing else. */
    private static final List<String> ENGINE_MODULE_PATH =
            List.of("dmsnap.engine", "dmsnap.store", "dmsnap.ffm", "dmsnap.jextract", "org.slf4j");

    private static final String BEGIN = "<!-- embedding-example:begin -->";
    private static final String END = "<!-- embedding-example:end -->";

    @TempDir
    Path dir;

    @Test
    void theEngineRequiresOnlyTheStoreAndSlf4j() {
        ModuleDescriptor engine =
                ModuleLayer.boot().findModule("dmsnap.engine").orElseThrow().getDescriptor();
        Set<String> requires = engine.requires().stream()
                .map(ModuleDescriptor.Requires::name)
                .collect(Collectors.toCollection(TreeSet::new));
        assertEquals(new TreeSet<>(List.of("dmsnap.store", "java.base", "org.slf4j")), requires);
    }

    @Test
    void theReadmeExampleCompilesAgainstTheEngineAlone() throws IOException {
        List<String> example = exampleLines(Path.of("..", "README.md"));
        StringBuilder source = new StringBuilder("package example;\n\n");
        List<String> body = new ArrayList<>();
        for (String line : example) {
            if (line.startsWith("import ")) {
                source.append(line).append('\n');
            } else {
                body.add(line);
            }
        }
        source.append("\nfinal class Embedding {\n    static void run() throws Exception {\n");
        for (String line : body) {
            source.append("        ").append(line).append('\n');
        }
        source.append("    }\n}\n");
        Path src = dir.resolve("src");
        Files.createDirectories(src.resolve("example"));
        Files.writeString(src.resolve("module-info.java"), "module example {\n    requires dmsnap.engine;\n}\n");
        Files.writeString(src.resolve("example/Embedding.java"), source);

        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
        StringWriter out = new StringWriter();
        try (StandardJavaFileManager files = javac.getStandardFileManager(diagnostics, null, null)) {
            List<String> options = List.of(
                    "--module-path", modulePath(), "-d", dir.resolve("out").toString(), "-proc:none", "-Xlint:all");
            boolean ok = javac.getTask(
                            out,
                            files,
                            diagnostics,
                            options,
                            null,
                            files.getJavaFileObjects(
                                    src.resolve("module-info.java"), src.resolve("example/Embedding.java")))
                    .call();
            assertTrue(
                    ok,
                    () -> "the README example does not compile against " + ENGINE_MODULE_PATH + ":\n"
                            + diagnostics.getDiagnostics().stream()
                                    .map(Object::toString)
                                    .collect(Collectors.joining("\n"))
                            + out + "\n--- compiled source:\n" + source);
        }
    }

    /** The lines of the README's Java block between the markers. */
    private static List<String> exampleLines(Path readme) throws IOException {
        List<String> lines = Files.readAllLines(readme);
        int begin = lines.indexOf(BEGIN);
        int end = lines.indexOf(END);
        assertTrue(begin >= 0 && end > begin, readme + " has no " + BEGIN + " ... " + END + " block");
        List<String> block = lines.subList(begin + 1, end);
        assertEquals("```java", block.getFirst(), "the marked block is a Java code block");
        assertEquals("```", block.getLast(), "the marked block is one Java code block");
        return block.subList(1, block.size() - 1);
    }

    /** Where the boot layer found the engine and the modules it requires (jars or class directories). */
    private static String modulePath() {
        List<String> path = new ArrayList<>();
        for (String name : ENGINE_MODULE_PATH) {
            ResolvedModule module = ModuleLayer.boot()
                    .configuration()
                    .findModule(name)
                    .orElseThrow(() -> new AssertionError(name + " is not in the boot layer"));
            path.add(Path.of(module.reference().location().orElseThrow()).toString());
        }
        return String.join(java.io.File.pathSeparator, path);
    }
}
