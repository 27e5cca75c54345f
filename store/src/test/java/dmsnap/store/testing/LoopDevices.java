package dmsnap.store.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Real block devices for tests: {@code losetup} a file. Needs root and util-linux; {@link
 * #unavailableReason()} says why not, for {@code assumeTrue} with a printed reason.
 */
public final class LoopDevices {
    private LoopDevices() {}

    /** Null when loop devices can be attached here, else why not. */
    public static String unavailableReason() {
        if (!isRoot()) {
            return "not root (uid " + uid() + "): loop devices need root";
        }
        if (!Files.isExecutable(Path.of("/usr/sbin/losetup")) && !Files.isExecutable(Path.of("/sbin/losetup"))) {
            return "losetup is not installed (util-linux / mount package)";
        }
        if (!Files.exists(Path.of("/dev/loop-control"))) {
            return "/dev/loop-control is missing: no loop driver";
        }
        return null;
    }

    public static boolean isRoot() {
        return "0".equals(uid());
    }

    private static String uid() {
        try {
            return run(List.of("id", "-u")).trim();
        } catch (IOException e) {
            return "unknown";
        }
    }

    /** A loop device over {@code backing} with {@code sectorBytes} logical sectors, detached on close. */
    public static Loop attach(Path backing, int sectorBytes) throws IOException {
        List<String> cmd = new ArrayList<>(List.of("losetup", "--find", "--show"));
        if (sectorBytes != 512) {
            cmd.addAll(List.of("--sector-size", Integer.toString(sectorBytes)));
        }
        cmd.add(backing.toString());
        // losetup finds a free device, then binds it: another process (a concurrent suite, udev)
        // may bind that one first, and then it says EBUSY. Only that refusal is tried again.
        for (int attempt = 1; ; attempt++) {
            try {
                return new Loop(Path.of(run(cmd).trim()));
            } catch (IOException e) {
                if (attempt == 50 || !String.valueOf(e.getMessage()).contains("Device or resource busy")) {
                    throw e;
                }
            }
        }
    }

    /** An attached loop device. */
    public record Loop(Path device) implements AutoCloseable {
        @Override
        public void close() throws IOException {
            IOException last = null;
            // Detaching right after a close can race udev probing (EBUSY): retry, for up to a
            // minute on a busy machine.
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (System.nanoTime() < deadline) {
                try {
                    run(List.of("losetup", "--detach", device.toString()));
                    return;
                } catch (IOException e) {
                    last = e;
                    try {
                        Thread.sleep(100);
                    } catch (InterruptedException ie) {
                        Thread.currentThread().interrupt();
                        break;
                    }
                }
            }
            throw last;
        }
    }

    static String run(List<String> cmd) throws IOException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        try {
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException(String.join(" ", cmd) + ": timed out");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(String.join(" ", cmd) + ": interrupted", e);
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.exitValue() != 0) {
            throw new IOException(String.join(" ", cmd) + " failed (exit " + p.exitValue() + "): " + out.trim());
        }
        return out;
    }
}
