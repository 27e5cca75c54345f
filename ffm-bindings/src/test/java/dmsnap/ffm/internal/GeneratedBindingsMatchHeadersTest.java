package dmsnap.ffm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.jextract.linux.Linux;
import dmsnap.jextract.linux.iovec;
import dmsnap.jextract.linux.statx;
import dmsnap.jextract.linux.statx_timestamp;
import java.io.IOException;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.PaddingLayout;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The checked-in jextract output must match the C headers of the machine that builds dmsnap:
 * a C probe, compiled with gcc against the same {@code jextract/dmsnap.h}, prints every generated
 * constant and every member offset/size of every generated struct, and each line must equal the
 * value the Java bindings carry. Catches stale bindings and a different architecture or libc.
 */
class GeneratedBindingsMatchHeadersTest {
    private static final Map<String, GroupLayout> STRUCTS = new LinkedHashMap<>();

    static {
        STRUCTS.put("statx", statx.layout());
        STRUCTS.put("statx_timestamp", statx_timestamp.layout());
        STRUCTS.put("iovec", iovec.layout());
    }

    @TempDir
    Path dir;

    /** Every generated constant: public static no-arg methods of Linux named like a C macro. */
    static Map<String, Long> javaConstants() throws ReflectiveOperationException {
        Map<String, Long> constants = new LinkedHashMap<>();
        for (Method m : Linux.class.getMethods()) {
            if (Modifier.isStatic(m.getModifiers())
                    && m.getParameterCount() == 0
                    && m.getName().matches("[A-Z][A-Z0-9_]*")
                    && (m.getReturnType() == int.class || m.getReturnType() == long.class)) {
                Object v = m.invoke(null);
                constants.put(m.getName(), ((Number) v).longValue());
            }
        }
        return new java.util.TreeMap<>(constants);
    }

    /** "struct SIZE" and "struct.member OFFSET SIZE" for every named, non-padding member. */
    static Map<String, String> javaLayouts() {
        Map<String, String> lines = new LinkedHashMap<>();
        STRUCTS.forEach((name, layout) -> {
            lines.put(name, Long.toString(layout.byteSize()));
            for (MemoryLayout member : layout.memberLayouts()) {
                if (member instanceof PaddingLayout || member.name().isEmpty()) {
                    continue;
                }
                String field = member.name().orElseThrow();
                long offset = layout.byteOffset(MemoryLayout.PathElement.groupElement(field));
                lines.put(name + "." + field, offset + " " + member.byteSize());
            }
        });
        return lines;
    }

    @Test
    void everyConstantAndStructMemberMatchesGcc() throws Exception {
        Path header = Path.of(System.getProperty("dmsnap.jextract.header", "../jextract/dmsnap.h"))
                .toAbsolutePath();
        assertTrue(Files.isRegularFile(header), "umbrella header not found: " + header);
        Map<String, Long> constants = javaConstants();
        Map<String, String> layouts = javaLayouts();
        assertTrue(constants.size() > 50, "expected the generated constants, found " + constants.size());

        StringBuilder c = new StringBuilder();
        c.append("#include \"").append(header).append("\"\n#include <stdio.h>\n#include <stddef.h>\n");
        c.append("int main(void) {\n");
        for (String name : constants.keySet()) {
            c.append("    printf(\"")
                    .append(name)
                    .append(" %lld\\n\", (long long) (")
                    .append(name)
                    .append("));\n");
        }
        STRUCTS.forEach((name, layout) -> {
            c.append("    printf(\"")
                    .append(name)
                    .append(" %zu\\n\", sizeof(struct ")
                    .append(name)
                    .append("));\n");
            for (String key : layouts.keySet()) {
                if (key.startsWith(name + ".")) {
                    String field = key.substring(name.length() + 1);
                    c.append("    printf(\"")
                            .append(key)
                            .append(" %zu %zu\\n\", offsetof(struct ")
                            .append(name)
                            .append(", ")
                            .append(field)
                            .append("), sizeof(((struct ")
                            .append(name)
                            .append(" *) 0)->")
                            .append(field)
                            .append("));\n");
                }
            }
        });
        c.append("    return 0;\n}\n");
        Path source = dir.resolve("probe.c");
        Files.writeString(source, c);
        Path binary = dir.resolve("probe");
        run(List.of("gcc", "-Wall", "-Werror", "-o", binary.toString(), source.toString()));
        List<String> output = run(List.of(binary.toString()));

        Map<String, String> expected = new LinkedHashMap<>();
        constants.forEach((k, v) -> expected.put(k, Long.toString(v)));
        expected.putAll(layouts);
        Map<String, String> actual = new LinkedHashMap<>();
        for (String line : output) {
            int space = line.indexOf(' ');
            actual.put(line.substring(0, space), line.substring(space + 1));
        }
        List<String> mismatches = new ArrayList<>();
        expected.forEach((k, v) -> {
            if (!v.equals(actual.get(k))) {
                mismatches.add(k + ": Java " + v + ", gcc " + actual.get(k));
            }
        });
        System.out.println("gcc probe: compared " + constants.size() + " constants and " + layouts.size()
                + " struct sizes/members (" + String.join(", ", STRUCTS.keySet()) + ") with " + header
                + ": " + mismatches.size() + " mismatches");
        assertEquals(List.of(), mismatches, "generated bindings differ from the C headers: regenerate them");
    }

    private static List<String> run(List<String> command) throws IOException, InterruptedException {
        Process p;
        try {
            p = new ProcessBuilder(command).redirectErrorStream(true).start();
        } catch (IOException e) {
            throw new IOException(
                    "cannot run " + command.getFirst() + " (gcc is needed for this check): " + e.getMessage(), e);
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new AssertionError(String.join(" ", command) + " failed:\n" + out);
        }
        return out.lines().toList();
    }
}
