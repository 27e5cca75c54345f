package dmsnap.cli;

import dmsnap.ffm.Platform;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Properties;
import picocli.CommandLine;

/** {@code dmsnap --version}: the build's version, the JVM, and what the native bindings target. */
final class VersionProvider implements CommandLine.IVersionProvider {

    static String version() {
        Properties p = new Properties();
        try (InputStream in = VersionProvider.class.getResourceAsStream("version.properties")) {
            if (in != null) {
                p.load(in);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return p.getProperty("version", "unknown");
    }

    @Override
    public String[] getVersion() {
        Runtime.Version jvm = Runtime.version();
        return new String[] {
            "dmsnap " + version(),
            "Java " + jvm + " (" + System.getProperty("java.vendor") + ") on " + System.getProperty("os.name") + " "
                    + System.getProperty("os.arch"),
            "native bindings: generated for " + Platform.bindingsTarget(),
            "targets: snapshot-origin v1.9.0, snapshot v1.16.0, snapshot-merge v1.5.0 (kernel dm-snapshot)",
        };
    }
}
