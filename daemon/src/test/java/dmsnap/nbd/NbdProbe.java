package dmsnap.nbd;

import static dmsnap.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.BooleanSupplier;

/**
 * What the hostile-client and fuzz tests share: a well-behaved client that proves the server
 * still serves correct data, waiting for the server to close a connection (with a deadline, so a
 * server that never closes fails the test instead of hanging it), names of wire values for
 * messages, and the process's memory as the kernel and the JVM report it.
 */
final class NbdProbe {
    private NbdProbe() {}

    /** How long a test waits for what must happen (a busy machine is slow, not stuck). */
    static final long WAIT_MS = 60_000;

    /** Where the good client may write on {@code lin}: its upper half (hostile cases stay out of it). */
    static final long GOOD_AREA = 512 * 1024;

    static final int GOOD_BLOCK = 8192;

    /**
     * A well-behaved client: one connection to {@code lin} held open across the hostile cases, and
     * at each check a new connection (alternately with structured replies) to {@code lin} and to
     * {@code snap}. Every check writes a fresh pattern and reads it back on both connections, and
     * reads a stretch of the snapshot, which nothing writes, against the original pattern.
     */
    static final class GoodClient implements AutoCloseable {
        private final NbdFixture fx;
        private final NbdTestClient held;
        private int round;

        GoodClient(NbdFixture fx) throws Exception {
            this.fx = fx;
            this.held = fx.open("lin", false);
        }

        /** Checks that correct data flows on the held connection and on new ones; returns the milliseconds it took. */
        long check(String after) {
            long start = System.nanoTime();
            round++;
            try {
                byte[] a = pattern(round * 2L);
                long at = GOOD_AREA + (round % 32) * (long) GOOD_BLOCK;
                assertEquals(0, held.write(at, a), after + ": write on the held connection");
                assertArrayEquals(a, held.read(at, a.length), after + ": read back on the held connection");
                boolean structured = round % 2 == 0;
                try (NbdTestClient fresh = fx.open("lin", structured)) {
                    assertArrayEquals(a, fresh.read(at, a.length), after + ": another connection sees the write");
                    byte[] b = pattern(round * 2L + 1);
                    long at2 = GOOD_AREA + ((round + 16) % 32) * (long) GOOD_BLOCK;
                    assertEquals(0, fresh.write(at2, b), after + ": write on a new connection");
                    assertArrayEquals(b, held.read(at2, b.length), after + ": the held connection sees it");
                    fresh.disconnect();
                    assertTrue(fresh.closedByServer(), after + ": DISC closes");
                }
                try (NbdTestClient snap = fx.open("snap", !structured)) {
                    long s = (round % 100) * 65536L;
                    byte[] old = snap.read(s, 65536);
                    for (int i = 0; i < old.length; i += 512) {
                        assertEquals(NbdFixture.original(s + i), old[i], after + ": snapshot data at " + (s + i));
                        assertEquals(old[i], old[i + 511], after + ": snapshot data at " + (s + i + 511));
                    }
                }
            } catch (Exception e) {
                fail(after + ": the good client failed: " + e, e);
            }
            return (System.nanoTime() - start) / 1_000_000;
        }

        @Override
        public void close() throws IOException {
            held.close();
        }
    }

    static byte[] pattern(long seed) {
        byte[] b = new byte[GOOD_BLOCK];
        new Random(seed).nextBytes(b);
        return b;
    }

    /**
     * Waits (at most {@code withinMs}) for the server to close {@code c}; fails if it does not.
     *
     * @return bytes the server sent before closing, and how long it took
     */
    static Closed awaitClosed(NbdTestClient c, long withinMs) {
        long start = System.nanoTime();
        CompletableFuture<Long> drained = CompletableFuture.supplyAsync(
                () -> {
                    ByteBuffer b = ByteBuffer.allocate(64 * 1024);
                    long total = 0;
                    try {
                        while (true) {
                            b.clear();
                            int n = c.socket.read(b);
                            if (n < 0) {
                                return total;
                            }
                            total += n;
                        }
                    } catch (IOException e) {
                        return total; // reset by the server: closed too
                    }
                },
                command -> Thread.ofVirtual().start(command));
        try {
            long bytes = drained.get(withinMs, TimeUnit.MILLISECONDS);
            return new Closed(bytes, (System.nanoTime() - start) / 1_000_000);
        } catch (TimeoutException e) {
            try {
                c.close();
            } catch (IOException ignored) {
                // failing anyway
            }
            return fail("the server did not close the connection within " + withinMs + " ms");
        } catch (InterruptedException | ExecutionException e) {
            return fail(e);
        }
    }

    record Closed(long bytesBefore, long millis) {}

    /**
     * The server's name ({@code nbd#N ...}) for the connection a test has just opened: the one
     * open connection not in {@code before}. The server names a connection before it greets it,
     * so a client that has read the greeting is listed.
     */
    static String newPeer(NbdServer server, List<String> before) {
        List<String> added = new ArrayList<>();
        assertTrue(
                eventually(WAIT_MS, () -> {
                    added.clear();
                    added.addAll(server.openPeers());
                    added.removeAll(before);
                    return added.size() == 1;
                }),
                "one new connection, not " + added);
        return added.getFirst();
    }

    /**
     * The watchdog's deadline, on the server's {@code clock}, for the connection {@code stalled}
     * (see {@link #newPeer}), stuck in a message or a reply: once it alone has a deadline running,
     * the clock is moved on by exactly {@code timeout} and a watchdog pass closes nothing; moved
     * past it, the watchdog closes it and only it (fails if not within {@link #WAIT_MS}). Waiting
     * for that one connection by name, not for a count: a connection that has just sent its last
     * reply can hold a deadline for a moment, and counted in place of the stalled one it would be
     * the one closed (seen under load).
     */
    static void closedAfterTheTimeout(
            NbdServer server, ManualClock clock, Duration timeout, String stalled, String what) {
        assertTrue(
                eventually(WAIT_MS, () -> server.deadlinePeers().equals(List.of(stalled))),
                what + ": connections with a deadline running: " + server.deadlinePeers() + ", not [" + stalled + "]");
        long before = server.timedOut();
        clock.advance(timeout);
        server.closeOverdue();
        assertEquals(before, server.timedOut(), what + ": closed at the timeout, not after it");
        clock.advance(Duration.ofNanos(1));
        assertTrue(
                eventually(WAIT_MS, () -> {
                    server.closeOverdue();
                    if (!server.openPeers().contains(stalled)) {
                        return true;
                    }
                    // A reply the socket could still take was followed by the next, whose deadline runs from
                    // the moved clock: move on past that one too.
                    clock.advance(timeout);
                    return false;
                }),
                what + ": " + stalled + " not closed past the timeout");
        assertEquals(before + 1, server.timedOut(), what + ": connections the watchdog closed (only " + stalled + ")");
    }

    /**
     * Waits (at most {@link #WAIT_MS}) until {@code server} counts {@code n} connections; fails
     * saying how many it counts and where the server's threads stand, so that a connection that
     * never finishes closing shows what it waits for.
     */
    static void awaitConnections(NbdServer server, int n, String what) {
        if (eventually(WAIT_MS, () -> server.connectionCount() == n)) {
            return;
        }
        StringBuilder threads = new StringBuilder();
        Thread.getAllStackTraces().forEach((thread, stack) -> {
            if (thread.getName().startsWith("nbd") || thread.getName().startsWith("dmsnap")) {
                threads.append('\n').append(thread.getName()).append(' ').append(thread.getState());
                for (StackTraceElement frame : stack) {
                    threads.append("\n    at ").append(frame);
                }
            }
        });
        fail(what + ": " + server.connectionCount() + " connections, not " + n + " (open: " + server.openPeers()
                + ", with a deadline: " + server.deadlinePeers() + "); the server's threads:" + threads);
    }

    /** Waits (at most {@code withinMs}) for {@code condition}; false if it never held. */
    static boolean eventually(long withinMs, BooleanSupplier condition) {
        long end = System.nanoTime() + withinMs * 1_000_000;
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - end > 0) {
                return false;
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }
        return true;
    }

    /**
     * Waits for every task; fails with the first cause that is not a broken barrier or a timeout
     * (those are what the other tasks see when one fails).
     */
    static void joinAll(List<? extends Future<?>> tasks, long seconds) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        Throwable first = null;
        for (Future<?> f : tasks) {
            try {
                f.get(Math.max(0, end - System.nanoTime()), TimeUnit.NANOSECONDS);
            } catch (ExecutionException e) {
                Throwable cause = e.getCause();
                boolean secondary = cause instanceof java.util.concurrent.BrokenBarrierException
                        || cause instanceof TimeoutException;
                if (first == null
                        || !secondary
                                && (first instanceof java.util.concurrent.BrokenBarrierException
                                        || first instanceof TimeoutException)) {
                    first = cause;
                }
            } catch (TimeoutException e) {
                f.cancel(true);
                first = first != null ? first : e;
            }
        }
        if (first != null) {
            fail("a client failed: " + first, first);
        }
    }

    static String rep(int type) {
        return switch (type) {
            case NBD_REP_ACK -> "NBD_REP_ACK";
            case NBD_REP_SERVER -> "NBD_REP_SERVER";
            case NBD_REP_INFO -> "NBD_REP_INFO";
            case NBD_REP_ERR_UNSUP -> "NBD_REP_ERR_UNSUP";
            case NBD_REP_ERR_POLICY -> "NBD_REP_ERR_POLICY";
            case NBD_REP_ERR_INVALID -> "NBD_REP_ERR_INVALID";
            case NBD_REP_ERR_UNKNOWN -> "NBD_REP_ERR_UNKNOWN";
            case NBD_REP_ERR_TOO_BIG -> "NBD_REP_ERR_TOO_BIG";
            default -> "reply 0x" + Integer.toHexString(type);
        };
    }

    static String errno(int error) {
        return switch (error) {
            case 0 -> "ok";
            case NBD_EPERM -> "NBD_EPERM";
            case NBD_EIO -> "NBD_EIO";
            case NBD_EINVAL -> "NBD_EINVAL";
            case NBD_ENOSPC -> "NBD_ENOSPC";
            case NBD_ESHUTDOWN -> "NBD_ESHUTDOWN";
            default -> "error " + error;
        };
    }

    /** Resident set size and its peak (kB, from /proc/self/status), and JVM direct/heap use (bytes). */
    record Memory(long rssKb, long hwmKb, long directBytes, long heapBytes) {
        static Memory now() {
            long rss = -1;
            long hwm = -1;
            try {
                List<String> status = Files.readAllLines(Path.of("/proc/self/status"));
                for (String line : status) {
                    if (line.startsWith("VmRSS:")) {
                        rss = kb(line);
                    } else if (line.startsWith("VmHWM:")) {
                        hwm = kb(line);
                    }
                }
            } catch (IOException e) {
                // not Linux: reported as -1
            }
            long direct = directPoolBytes();
            Runtime rt = Runtime.getRuntime();
            return new Memory(rss, hwm, direct, rt.totalMemory() - rt.freeMemory());
        }

        /**
         * The JVM's direct ByteBuffers ({@code BufferPoolMXBean "direct"}; FFM arena memory, such as
         * the server's request buffers, is not counted there: RSS and the pool's own counters show
         * it), or -1. Reflective: the daemon module does not read java.management, so this test
         * code adds the read edge for itself.
         */
        private static long directPoolBytes() {
            try {
                Module management =
                        ModuleLayer.boot().findModule("java.management").orElse(null);
                if (management == null) {
                    return -1;
                }
                NbdProbe.class.getModule().addReads(management);
                Class<?> factory = Class.forName("java.lang.management.ManagementFactory");
                Class<?> pool = Class.forName("java.lang.management.BufferPoolMXBean");
                long used = 0;
                for (Object bean : (List<?>)
                        factory.getMethod("getPlatformMXBeans", Class.class).invoke(null, pool)) {
                    if ("direct".equals(pool.getMethod("getName").invoke(bean))) {
                        used += (long) pool.getMethod("getMemoryUsed").invoke(bean);
                    }
                }
                return used;
            } catch (ReflectiveOperationException | RuntimeException e) {
                return -1;
            }
        }

        private static long kb(String line) {
            return Long.parseLong(line.replaceAll("[^0-9]", ""));
        }

        @Override
        public String toString() {
            return "RSS " + rssKb / 1024 + " MiB (peak " + hwmKb / 1024 + " MiB), JVM direct ByteBuffers "
                    + (directBytes >> 20) + " MiB, heap used " + (heapBytes >> 20) + " MiB";
        }
    }

    static String mib(long bytes) {
        return bytes % (1 << 20) == 0 ? (bytes >> 20) + " MiB" : String.format("%.2f MiB", bytes / 1048576.0);
    }

    static byte[] filled(int length, int value) {
        byte[] b = new byte[length];
        Arrays.fill(b, (byte) value);
        return b;
    }
}
