package dmsnap.daemon;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A tmpfs of a few pages, mounted for one test and then filled up: a state directory on a full
 * file system. Mounting needs root; elsewhere the test is skipped (an assumption, as for O_DIRECT).
 */
final class TinyTmpfs implements AutoCloseable {
    private final Path mountPoint;

    private TinyTmpfs(Path mountPoint) {
        this.mountPoint = mountPoint;
    }

    /** Mounts a tmpfs of {@code kib} KiB (mode 0700) on {@code mountPoint}, or skips the test. */
    static TinyTmpfs mount(Path mountPoint, int kib) throws IOException, InterruptedException {
        Files.createDirectories(mountPoint);
        int rc = run("mount", "-t", "tmpfs", "-o", "size=" + kib + "k,mode=0700", "dmsnap-test", mountPoint.toString());
        assumeTrue(rc == 0, "cannot mount a tmpfs (not root?): skipped");
        return new TinyTmpfs(mountPoint);
    }

    Path path() {
        return mountPoint;
    }

    /** Writes a file until the file system says ENOSPC: afterwards no new file gets a byte. */
    void fill() throws IOException {
        byte[] page = new byte[4096];
        try (OutputStream out = Files.newOutputStream(mountPoint.resolve("filler"))) {
            for (int i = 0; i < 1 << 20; i++) {
                out.write(page);
            }
        } catch (IOException e) {
            if (e.getMessage() == null || !e.getMessage().contains("No space left on device")) {
                throw e;
            }
            return;
        }
        throw new IllegalStateException(mountPoint + " did not fill up");
    }

    @Override
    public void close() throws IOException, InterruptedException {
        run("umount", "-l", mountPoint.toString());
    }

    private static int run(String... command) throws IOException, InterruptedException {
        return new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .start()
                .waitFor();
    }
}
