package dmsnap.nbd;

import static dmsnap.nbd.NbdProbe.WAIT_MS;
import static dmsnap.nbd.NbdProbe.eventually;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NbdChannelTest {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final MethodHandle PTHREAD_SIGMASK = LINKER.downcallHandle(
            LINKER.defaultLookup().find("pthread_sigmask").orElseThrow(),
            FunctionDescriptor.of(
                    ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.ADDRESS));
    private static final MethodHandle SIGRTMAX = LINKER.downcallHandle(
            LINKER.defaultLookup().find("__libc_current_sigrtmax").orElseThrow(),
            FunctionDescriptor.of(ValueLayout.JAVA_INT));
    private static final int SIG_BLOCK = 0;

    /**
     * The watchdog's close ends a reply the client never takes even when the writer misses the
     * signal the JDK sends a thread blocked on a channel being closed: here the writer blocks that
     * signal (the JDK's SIGRTMAX-2), the one way to make it miss it on purpose. Before the close
     * shut the socket down, this writer stayed in its write for good, as the stalled connection's
     * writer did in NbdHostileClientTest under load.
     */
    @Test
    void closingEndsABlockedReplyWithoutTheJdksWakeUpSignal(@TempDir Path dir) throws Exception {
        ManualClock clock = new ManualClock();
        Duration timeout = Duration.ofSeconds(1);
        try (ServerSocketChannel listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            listener.bind(UnixDomainSocketAddress.of(dir.resolve("s")));
            try (SocketChannel client = SocketChannel.open(listener.getLocalAddress());
                    NbdChannel channel = new NbdChannel(listener.accept(), "nbd#1", timeout.toNanos(), clock)) {
                CompletableFuture<Throwable> ended = new CompletableFuture<>();
                Thread writer = Thread.ofPlatform().name("blocked-writer").start(() -> {
                    try {
                        blockTheJdksWakeUpSignal();
                        ByteBuffer reply = ByteBuffer.allocateDirect(8 << 20); // more than the socket holds
                        channel.writeFully(reply);
                        ended.complete(null);
                    } catch (Throwable e) {
                        ended.complete(e);
                    }
                });
                assertTrue(
                        eventually(WAIT_MS, () -> blockedInAWrite(writer)),
                        "the writer blocks: the client reads nothing");
                clock.advance(timeout.plusNanos(1));
                assertTrue(channel.closeIfOverdue(clock.getAsLong()), "the reply is overdue");
                Throwable outcome = ended.get(WAIT_MS, TimeUnit.MILLISECONDS);
                assertInstanceOf(IOException.class, outcome, "the write ends with an error");
            }
        }
    }

    private static void blockTheJdksWakeUpSignal() throws Throwable {
        int signal = (int) SIGRTMAX.invokeExact() - 2;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment set = arena.allocate(128); // sigset_t
            set.set(ValueLayout.JAVA_LONG, 0, 1L << (signal - 1));
            int rc = (int) PTHREAD_SIGMASK.invokeExact(SIG_BLOCK, set, MemorySegment.NULL);
            if (rc != 0) {
                throw new IllegalStateException("pthread_sigmask: " + rc);
            }
        }
    }

    /** Whether {@code thread} is in the native write of a socket (its send buffer full). */
    private static boolean blockedInAWrite(Thread thread) {
        StackTraceElement[] stack = thread.getStackTrace();
        return stack.length > 0
                && stack[0].isNativeMethod()
                && stack[0].getMethodName().startsWith("write");
    }
}
