package dmsnap.nbd;

import static dmsnap.nbd.NbdProtocol.*;

import dmsnap.nbd.NbdRequestRules.Verdict;
import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One client in the transmission phase. The reader (this connection's thread) takes
 * requests off the socket: a write's payload goes straight from the socket into an aligned
 * off-heap buffer, which the device is then written from; a read's buffer is filled by the
 * device and sent from. Requests run concurrently on the server's I/O threads, and their
 * replies go out in completion order through the writer, a second thread, so a client
 * that does not read its replies never holds an I/O thread; replies that wait together go out
 * in one gathering write. A queue-depth-1 client's requests run on the reader's thread instead,
 * replies sent from there: no thread hand-off at all (see {@link #readRequests}). A deeper
 * client's read that the page cache holds is served on the reader's thread too, its reply sent
 * from there when the writer is idle, else by the writer: no hand-off, or one instead of two (see
 * {@link NowaitReads}, {@link #sendOrQueue}). Its large reads
 * of a device that reads through the page cache are one read, as large as the request, so that
 * the kernel's readahead sees one sequential stream; of a device read with O_DIRECT, pieces read
 * at once whose reply streams ({@link #readInPieces}).
 *
 * <p>Bounds: at most {@value #MAX_IN_FLIGHT} requests per connection between being read and
 * their reply being sent; past that the reader waits. Buffers come from the connection's
 * {@link BufferPool.Share}: its reserve, or the shared budget within its fair share, whichever
 * has room at once. When neither has, the reader waits for its own reserve, which only its own
 * replies give back, and does the request with it, on this thread: a request larger than the
 * reserve is streamed in pieces of it ({@link #streamRead}, {@link #streamWrite}). So a client
 * that does not read its replies stops only its own reader, once it holds its reserve and its
 * fair share; the other connections never wait for the buffers it holds (see {@link BufferPool}).
 * The watchdog still closes it when a reply has waited past the timeout.
 *
 * <p>Errors: a request that breaks its command's rules (bounds, alignment, length, flags: see
 * {@link NbdRequestRules}) gets the spec's error and the connection goes on; broken framing
 * (bad magic) or a stalled message ends the connection. Ending waits for the requests in flight.
 * The bytes of requests and replies are {@link NbdCodec}'s; this class decides which go out
 * when, from which thread and buffer.
 */
final class NbdConnection {
    private static final Logger log = LoggerFactory.getLogger(NbdConnection.class);
    private static final Logger io = LoggerFactory.getLogger("dmsnap.io");
    static final int MAX_IN_FLIGHT = 64;

    private final NbdChannel channel;
    private final NbdExport export;
    /** Structured replies were negotiated: the shape of read and error replies. */
    private final boolean structured;
    /** The metadata contexts selected for block status; context id = index + 1. */
    private final List<MetaContext> contexts;

    private final NbdRequestRules rules;
    private final Executor ioThreads;
    /** This connection's part of the request buffers; closed when the connection ends. */
    private final BufferPool.Share share;

    private final Semaphore inFlight = new Semaphore(MAX_IN_FLIGHT);
    private final BlockingQueue<Reply> replies = new LinkedBlockingQueue<>();
    /**
     * Requests the reader handed on (to the I/O threads or the writer) whose reply has not begun to
     * go out: counted down before the reply's first byte is written, so that a queue-depth-1
     * client's next request, which it sends only once it has that reply, always finds it zero.
     * ({@link #inFlight} is given back only after the send, so it may still count the request the
     * client has already had its reply to.)
     */
    private final AtomicInteger unanswered = new AtomicInteger();

    private final ByteBuffer requestHeader = ByteBuffer.allocateDirect(REQUEST_HEADER_BYTES);
    /** For skipping the payload of refused writes; made at the first one. */
    private ByteBuffer discard;

    private final AtomicLong unexpectedErrors;
    /** Requests done on the reader's thread, of every connection of the server (for tests). */
    private final LongAdder inlineRequests;
    /** Reads the reader served from the page cache instead of handing them off, of every connection. */
    private final LongAdder cachedReads;
    /** Whether the reader tries the next read from the page cache first (see {@link #readRequests}). */
    private final NowaitReads nowaitReads = new NowaitReads();

    private volatile boolean writerFailed;
    /** Held while a reply is being sent: by the writer, or by the reader for an inline request. */
    private final java.util.concurrent.locks.ReentrantLock sending = new java.util.concurrent.locks.ReentrantLock();

    private final ByteBuffer inlineHead = ByteBuffer.allocateDirect(NbdCodec.REPLY_HEAD_BYTES);
    static final long INLINE_MAX_BYTES = 1 << 20;
    /** Structured reads of twice this or more go out in chunks of this size (see {@link #inPieces}). */
    static final long READ_PIECE_BYTES = 256 << 10;
    /**
     * Every this many requests done inline, the reader looks, before the reply goes out, whether
     * the client has sent more already (see {@link #readRequests}).
     */
    static final int LOOK_AHEAD_EVERY = 32;
    // Reader-thread state for the inline decision (see readRequests).
    /** Requests in a row that came alone, and how many it takes before the next alone one runs inline. */
    private int aloneInRow;

    private int aloneNeeded = 1;
    /** The look ahead found the next request queued behind the one done inline: it did not come alone. */
    private boolean queuedBehind;

    private long inlineCount;

    private final RequestPolling.Reader polling;
    /** The last request ran on this thread: the client may be at queue depth 1, its next wait is timed. */
    private boolean afterInline;

    /** Why a request, or a piece of it, failed: the protocol's error and a sentence for structured replies. */
    private record Refusal(int error, String message) {}

    /**
     * One reply: an error (with a message for structured replies) or success, with read data. A
     * structured read that failed in a later piece keeps its buffer for the pieces before it:
     * {@code dataBytes} of data, then the error.
     */
    private record Reply(
            NbdRequest request,
            int error,
            String message,
            BufferPool.Buffer data,
            long dataBytes,
            ByteBuffer[] blockStatus) {
        static final Reply END = new Reply(null, 0, null, null, 0);

        Reply(NbdRequest request, int error, String message) {
            this(request, error, message, null, 0);
        }

        Reply(NbdRequest request, int error, String message, BufferPool.Buffer data, long dataBytes) {
            this(request, error, message, data, dataBytes, null);
        }
    }

    /** How the server logs warnings about clients (rate-limited; the format's last {@code {}} is for it). */
    @FunctionalInterface
    interface Warnings {
        void log(String format, Object... args);
    }

    private final Warnings warn;

    NbdConnection(
            NbdChannel channel,
            NbdHandshake.Result negotiated,
            Executor ioThreads,
            BufferPool buffers,
            AtomicLong unexpectedErrors,
            LongAdder inlineRequests,
            LongAdder cachedReads,
            RequestPolling polling,
            Warnings warn) {
        this.polling = polling.reader();
        this.warn = warn;
        this.channel = channel;
        this.unexpectedErrors = unexpectedErrors;
        this.inlineRequests = inlineRequests;
        this.cachedReads = cachedReads;
        this.export = negotiated.export();
        this.structured = negotiated.structuredReplies();
        this.contexts = negotiated.contexts();
        this.rules = NbdRequestRules.forExport(export, structured, !contexts.isEmpty());
        this.ioThreads = ioThreads;
        this.share = buffers.openShare();
    }

    /** Serves requests until the client disconnects or breaks the protocol; then waits for the ones in flight. */
    void serve() {
        Thread writer = Thread.ofPlatform()
                .name("nbd-writer-" + channel.peer())
                .daemon(true)
                .stackSize(NbdServer.CONNECTION_STACK_BYTES)
                .start(this::writeReplies);
        try {
            readRequests();
        } catch (EOFException e) {
            log.debug("{} on {}: {}", channel.peer(), export.name(), e.getMessage());
        } catch (IOException e) {
            if (channel.isOpen()) {
                warn.log("{} on {}: dropping the connection: {}{}", channel.peer(), export.name(), e.getMessage());
            } else {
                log.debug("{} on {}: connection closed: {}", channel.peer(), export.name(), e.getMessage());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            // Every request in flight has its reply sent (or dropped) before the writer ends.
            inFlight.acquireUninterruptibly(MAX_IN_FLIGHT);
            replies.add(Reply.END);
            try {
                writer.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            // The device first: a client that sees the connection closed finds it no longer held open.
            export.close();
            channel.finish(); // with TLS, close_notify first, as the protocol asks
            share.close(); // every buffer is back: the writer has sent or dropped every reply
        }
    }

    private void readRequests() throws IOException, InterruptedException {
        while (!writerFailed) {
            boolean timed = afterInline;
            afterInline = false;
            long waitStart = timed ? System.nanoTime() : 0;
            if (timed && polling.shouldPoll()) {
                polling.poll(channel, requestHeader, sending);
            }
            // The header buffer may hold the start of this request already (see the look ahead below).
            if (!channel.readMessage(requestHeader)) {
                return; // the client hung up between requests
            }
            if (timed) {
                polling.waited(System.nanoTime() - waitStart);
            }
            requestHeader.flip();
            // The header is in. Waiting for a slot or for buffer budget is the server's wait, not the
            // client's: no deadline runs then (else the watchdog drops clients the server is slow to
            // serve); a write's payload is a message of its own.
            channel.endMessage();
            NbdRequest r = NbdCodec.decodeRequest(requestHeader);
            requestHeader.clear();
            Verdict verdict = rules.check(r);
            if (verdict instanceof Verdict.Disconnect) {
                log.debug("{} on {}: disconnect", channel.peer(), export.name());
                return;
            }
            inFlight.acquire();
            boolean handedOn = false;
            BufferPool.Buffer buffer = null;
            try {
                if (verdict instanceof Verdict.Refuse refusal) {
                    if (r.type() == NBD_CMD_WRITE) {
                        channel.startMessage();
                        if (discard == null) {
                            discard = ByteBuffer.allocateDirect(64 * 1024);
                        }
                        channel.skip(r.length(), discard); // its payload follows; keep the framing
                        channel.endMessage();
                    }
                    io.trace("{}: refused: {}", export.name(), refusal.message());
                    queue(new Reply(r, refusal.error(), refusal.message()));
                    handedOn = true;
                    continue;
                }
                if (r.hasPayload()) {
                    buffer = share.tryAcquire(r.length());
                    if (buffer == null && r.length() <= share.reserveBytes()) {
                        buffer = share.acquireReserved(r.length()); // waits for this client's own replies only
                    }
                    if (buffer == null && r.type() == NBD_CMD_READ) {
                        handedOn = true; // its reply is sent and its slot given back there
                        streamRead(r);
                        continue;
                    }
                    if (buffer == null) {
                        queue(streamWrite(r));
                        handedOn = true;
                        continue;
                    }
                }
                if (r.type() == NBD_CMD_WRITE) {
                    channel.startMessage();
                    channel.readFully(buffer.segment().asByteBuffer());
                    channel.endMessage();
                }
                export.awaitResumed();
                BufferPool.Buffer data = buffer;
                // Alone: every request before it has had its reply begun. A queue-depth-1 client
                // sends its next request only once it has its reply, so each of its requests is
                // alone; from the second of them on they run here and their replies go out from here,
                // saving two thread hand-offs. A deeper client's requests may come alone for a while
                // (each served here, its next one already waiting in the socket): the look ahead
                // catches that, and from then on such a client needs a long run of requests that
                // came alone (LOOK_AHEAD_EVERY) before one runs here again.
                boolean alone = unanswered.get() == 0 && !queuedBehind;
                queuedBehind = false;
                boolean inline = alone && aloneInRow >= aloneNeeded && r.length() <= INLINE_MAX_BYTES;
                aloneInRow = alone ? aloneInRow + 1 : 0;
                if (inline) {
                    afterInline = true;
                    inlineRequests.increment();
                    handedOn = true;
                    buffer = null;
                    if (inPieces(r) && !export.readsThroughPageCache()) {
                        readInPieces(r, data);
                    } else {
                        Reply reply = perform(r, data);
                        if (++inlineCount % LOOK_AHEAD_EVERY == 0 && inputWaiting()) {
                            sentMoreMeanwhile();
                        }
                        sendNow(reply);
                    }
                    continue;
                }
                // A read the page cache holds is served here, its reply sent from here or queued for
                // the writer: one hand-off instead of two, or none (see NowaitReads, sendOrQueue).
                if (r.type() == NBD_CMD_READ && nowaitReads.shouldTry(r.length()) && export.readsThroughPageCache()) {
                    Reply reply = perform(r, data, true);
                    if (reply != null) {
                        nowaitReads.served();
                        cachedReads.increment();
                        sendOrQueue(reply, alone);
                        handedOn = true;
                        continue;
                    }
                    nowaitReads.missed();
                }
                unanswered.incrementAndGet();
                try {
                    ioThreads.execute(() -> replies.add(perform(r, data)));
                    handedOn = true;
                } catch (RejectedExecutionException e) {
                    unanswered.decrementAndGet();
                    buffer.release();
                    queue(new Reply(r, NBD_ESHUTDOWN, "the server is shutting down"));
                    handedOn = true;
                }
            } finally {
                if (!handedOn) {
                    if (buffer != null) {
                        buffer.release();
                    }
                    inFlight.release();
                }
            }
        }
    }

    /** Performs a checked request (on an I/O thread, or inline); returns its reply. */
    private Reply perform(NbdRequest r, BufferPool.Buffer buffer) {
        return perform(r, buffer, false);
    }

    /**
     * The same; {@code nowait}: a READ served only if that needs no wait ({@link
     * NbdExport#readIfCached}), else null, the buffer kept for the normal read. A try that fails
     * gets the reply a normal read's failure gets.
     */
    private Reply perform(NbdRequest r, BufferPool.Buffer buffer, boolean nowait) {
        int error = 0;
        String message = null;
        ByteBuffer[] status = null;
        try {
            switch (r.type()) {
                case NBD_CMD_BLOCK_STATUS -> status = blockStatus(r);
                case NBD_CMD_READ -> {
                    if (!nowait) {
                        export.read(r.offset(), buffer.segment());
                    } else if (!export.readIfCached(r.offset(), buffer.segment())) {
                        return null;
                    }
                }
                case NBD_CMD_WRITE -> export.write(r.offset(), buffer.segment(), r.fua());
                case NBD_CMD_FLUSH -> export.flush();
                case NBD_CMD_TRIM -> export.trim(r.offset(), r.length(), r.fua());
                case NBD_CMD_WRITE_ZEROES -> export.writeZeroes(r.offset(), r.length(), r.fua());
                default -> throw new IllegalStateException("unchecked command " + r.type());
            }
            if (io.isTraceEnabled()) { // its arguments are boxed into an array on every call otherwise
                io.trace("{} {} {}+{}: ok", export.name(), commandName(r.type()), r.offset(), r.length());
            }
        } catch (IOException e) {
            error = NBD_EIO;
            message = e.getMessage();
            io.trace("{} {} {}+{}: {}", export.name(), commandName(r.type()), r.offset(), r.length(), message);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            error = NBD_ESHUTDOWN;
            message = "the server is shutting down";
        } catch (RuntimeException e) {
            unexpectedErrors.incrementAndGet();
            log.error("{} on {}: {} failed", channel.peer(), export.name(), commandName(r.type()), e);
            error = NBD_EIO;
            message = String.valueOf(e.getMessage());
        }
        if (error == NBD_EIO && inPieces(r)) {
            return readAgainInPieces(r, buffer);
        }
        BufferPool.Buffer data = r.type() == NBD_CMD_READ && error == 0 ? buffer : null;
        if (buffer != null && data == null) {
            buffer.release();
        }
        return new Reply(r, error, message, data, data == null ? 0 : r.length(), error == 0 ? status : null);
    }

    /**
     * A block status chunk's extents as they come, (length in bytes, flags) pairs with neighbours
     * merged, written in place into the chunk's bytes after room for its header (see {@link
     * NbdCodec#blockStatus}): no copy between the walk and the socket.
     */
    private static final class Extents {
        private static final VarHandle INT = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.BIG_ENDIAN);

        private final int limit;
        byte[] chunk = new byte[NbdCodec.BLOCK_STATUS_HEAD_BYTES + 8 * 16];
        int count;
        /** The last extent's length and flags (also in {@link #chunk}). */
        private long lastBytes;

        private int lastFlags;

        Extents(int limit) {
            this.limit = limit;
        }

        /** Adds a run; false once the limit is reached and a run of another status comes. */
        boolean add(long sectors, int flags) {
            long bytes = sectors << 9;
            int at = NbdCodec.BLOCK_STATUS_HEAD_BYTES + 8 * count;
            if (count > 0 && lastFlags == flags && lastBytes + bytes <= 0xffff_ffffL) {
                lastBytes += bytes;
                INT.set(chunk, at - 8, (int) lastBytes);
                return true;
            }
            if (count == limit) {
                return false;
            }
            if (at + 8 > chunk.length) {
                chunk = Arrays.copyOf(
                        chunk,
                        NbdCodec.BLOCK_STATUS_HEAD_BYTES + 2 * (chunk.length - NbdCodec.BLOCK_STATUS_HEAD_BYTES));
            }
            INT.set(chunk, at, (int) bytes);
            INT.set(chunk, at + 4, flags);
            lastBytes = bytes;
            lastFlags = flags;
            count++;
            return true;
        }
    }

    /** The most extents one block status chunk describes (the protocol's limit). */
    static final int MAX_EXTENTS = 1 << 20;

    /**
     * The reply to a BLOCK_STATUS: a chunk per selected context, in id order, each describing the
     * range from the request's offset on in runs of one status (neighbours with the same status
     * merged), up to its end or {@link #MAX_EXTENTS} runs, one with REQ_ONE.
     */
    private ByteBuffer[] blockStatus(NbdRequest r) throws IOException, InterruptedException {
        long first = r.offset() >>> 9;
        long end = first + (r.length() >>> 9);
        int limit = r.reqOne() ? 1 : MAX_EXTENTS;
        ByteBuffer[] chunks = new ByteBuffer[contexts.size()];
        for (int i = 0; i < chunks.length; i++) {
            MetaContext context = contexts.get(i);
            Extents extents = new Extents(limit);
            context.runs(export.device(), first, end - first, extents::add);
            chunks[i] = NbdCodec.blockStatus(r.cookie(), i == chunks.length - 1, i + 1, extents.chunk, extents.count);
        }
        return chunks;
    }

    /**
     * Whether a read's reply goes out as one data chunk per {@link #READ_PIECE_BYTES}: a structured
     * read of two pieces or more, unless the client asked for one chunk (DF). Whichever thread
     * sends it, so that a reply's shape does not depend on how the request was scheduled.
     */
    private boolean inPieces(NbdRequest r) {
        return structured && r.type() == NBD_CMD_READ && !r.df() && r.length() >= 2 * READ_PIECE_BYTES;
    }

    /**
     * A read to be sent in pieces failed as a whole: read again piece by piece, so that the reply
     * has the pieces before the first failing one and then its error, as {@link #readInPieces} sends.
     */
    private Reply readAgainInPieces(NbdRequest r, BufferPool.Buffer buffer) {
        MemorySegment whole = buffer.segment();
        for (long at = 0; at < r.length(); at += READ_PIECE_BYTES) {
            Refusal error = readPiece(r.offset() + at, whole.asSlice(at, Math.min(READ_PIECE_BYTES, r.length() - at)));
            if (error != null) {
                if (at == 0) {
                    buffer.release();
                    return new Reply(r, error.error(), error.message());
                }
                return new Reply(r, error.error(), error.message(), buffer, at);
            }
        }
        return new Reply(r, 0, null, buffer, r.length()); // it failed only the first time
    }

    /**
     * A large read for a queue-depth-1 client, with structured replies, of a device read with
     * O_DIRECT: read in pieces, all started at once (the later ones on I/O threads), each sent as
     * its own data chunk as soon as it and the ones before it are in, so that the socket transfer
     * of the first pieces overlaps the device reads of the rest. Not through the page cache: pieces
     * read at once reach the file out of order, and one read of the whole request, as nbdkit's file
     * plugin does, measured faster there (bench/RESULTS.md, issue 18). A failed piece ends the
     * reply with an error chunk (the client sees the read fail); the buffer is given back only when
     * every piece is done.
     */
    private void readInPieces(NbdRequest r, BufferPool.Buffer buffer) {
        MemorySegment whole = buffer.segment();
        int count = (int) ((r.length() + READ_PIECE_BYTES - 1) / READ_PIECE_BYTES);
        List<CompletableFuture<Refusal>> pieces = new ArrayList<>(count);
        pieces.add(null);
        for (int i = 1; i < count; i++) {
            long from = i * READ_PIECE_BYTES;
            MemorySegment into = whole.asSlice(from, Math.min(READ_PIECE_BYTES, r.length() - from));
            try {
                pieces.add(CompletableFuture.supplyAsync(() -> readPiece(r.offset() + from, into), ioThreads));
            } catch (RejectedExecutionException e) {
                pieces.add(
                        CompletableFuture.completedFuture(new Refusal(NBD_ESHUTDOWN, "the server is shutting down")));
            }
        }
        pieces.set(0, CompletableFuture.completedFuture(readPiece(r.offset(), whole.asSlice(0, READ_PIECE_BYTES))));
        sending.lock();
        try {
            Refusal failed = null;
            for (int i = 0; i < count; i++) {
                Refusal error = pieces.get(i).join();
                if (failed != null || writerFailed) {
                    continue; // only waiting for the rest now
                }
                if (error != null) {
                    failed = error;
                    continue;
                }
                long from = i * READ_PIECE_BYTES;
                MemorySegment data = whole.asSlice(from, Math.min(READ_PIECE_BYTES, r.length() - from));
                try {
                    sendData(r, from, data, i == count - 1, inlineHead);
                } catch (IOException e) {
                    sendFailed(e);
                }
            }
            buffer.release();
            // The reply ends with the error, its DONE chunk after any data chunks already sent.
            sendAndRelease(failed == null ? null : new Reply(r, failed.error(), failed.message()), inlineHead);
        } finally {
            sending.unlock();
        }
    }

    /** Reads one piece of a read request; null, or the error its reply gets. */
    private Refusal readPiece(long offsetBytes, MemorySegment into) {
        return transferPiece(NBD_CMD_READ, offsetBytes, into, false);
    }

    /** Reads or writes one piece of a request; null, or the error its reply gets. */
    private Refusal transferPiece(int type, long offsetBytes, MemorySegment segment, boolean fua) {
        try {
            if (type == NBD_CMD_READ) {
                export.read(offsetBytes, segment);
            } else {
                export.write(offsetBytes, segment, fua);
            }
            return null;
        } catch (IOException e) {
            io.trace(
                    "{} {} {}+{}: {}",
                    export.name(),
                    commandName(type),
                    offsetBytes,
                    segment.byteSize(),
                    e.getMessage());
            return new Refusal(NBD_EIO, e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new Refusal(NBD_ESHUTDOWN, "the server is shutting down");
        } catch (RuntimeException e) {
            unexpectedErrors.incrementAndGet();
            log.error("{} on {}: {} failed", channel.peer(), export.name(), commandName(type), e);
            return new Refusal(NBD_EIO, String.valueOf(e.getMessage()));
        }
    }

    /**
     * A read larger than the reserve while the shared budget has no room for it (see the class
     * comment): read into the reserve a piece at a time, on this thread, each piece sent before
     * the next is read, so that the connection holds no more than its reserve however long its
     * client takes. Gives back the request's slot.
     */
    private void streamRead(NbdRequest r) throws InterruptedException {
        try {
            BufferPool.Buffer buffer = share.acquireReserved(share.reserveBytes());
            try {
                if (structured && !r.df()) {
                    streamChunks(r, buffer.segment());
                } else {
                    streamWhole(r, buffer.segment());
                }
            } finally {
                buffer.release();
            }
        } finally {
            inFlight.release();
        }
    }

    /**
     * A streamed read with structured replies: each piece a data chunk of its own (cut further as
     * {@link #sendData} cuts), the last one DONE; a failed piece ends the reply with its error.
     */
    private void streamChunks(NbdRequest r, MemorySegment piece) {
        for (long at = 0; at < r.length(); at += piece.byteSize()) {
            MemorySegment part = piece.asSlice(0, Math.min(piece.byteSize(), r.length() - at));
            Refusal error = readPiece(r.offset() + at, part);
            sending.lock();
            try {
                if (writerFailed) {
                    return;
                }
                if (error != null) {
                    send(new Reply(r, error.error(), error.message()), inlineHead);
                    return;
                }
                sendData(r, at, part, at + part.byteSize() == r.length(), inlineHead);
            } catch (IOException e) {
                sendFailed(e);
                return;
            } finally {
                sending.unlock();
            }
        }
    }

    /**
     * A streamed read whose reply gives the whole length before the data: a simple reply, or the
     * one chunk of a DF read. The header goes out once the first piece is in (a failure there is
     * the reply's error); a later piece that fails can no longer be reported, and the protocol
     * then has the server close the connection.
     */
    private void streamWhole(NbdRequest r, MemorySegment piece) {
        MemorySegment first = piece.asSlice(0, Math.min(piece.byteSize(), r.length()));
        Refusal error = readPiece(r.offset(), first);
        sending.lock();
        try {
            if (writerFailed) {
                return;
            }
            if (error != null) {
                send(new Reply(r, error.error(), error.message()), inlineHead);
                return;
            }
            if (structured) {
                NbdCodec.putOffsetData(inlineHead, true, r.cookie(), r.offset(), r.length());
            } else {
                NbdCodec.putSimpleReply(inlineHead, 0, r.cookie());
            }
            channel.writeFully(inlineHead, first.asByteBuffer());
            for (long at = first.byteSize(); at < r.length(); at += piece.byteSize()) {
                MemorySegment part = piece.asSlice(0, Math.min(piece.byteSize(), r.length() - at));
                error = readPiece(r.offset() + at, part);
                if (error != null) {
                    warn.log(
                            "{} on {}: READ at {}+{} failed after its reply began; closing the connection, as the"
                                    + " protocol requires: {}{}",
                            channel.peer(),
                            export.name(),
                            Long.toUnsignedString(r.offset()),
                            r.length(),
                            error.message());
                    writerFailed = true;
                    channel.close(); // the reader ends too
                    return;
                }
                channel.writeFully(part.asByteBuffer());
            }
        } catch (IOException e) {
            sendFailed(e);
        } finally {
            sending.unlock();
        }
    }

    /**
     * A write larger than the reserve while the shared budget has no room for it: its payload
     * taken off the socket a piece at a time into the reserve, each piece written before the next
     * is read. Each piece is a message of its own for the watchdog (the device's time is not the
     * client's). After a failed piece the rest of the payload is read and dropped, to keep the
     * framing, and the reply has the error. Returns the reply.
     */
    private Reply streamWrite(NbdRequest r) throws IOException, InterruptedException {
        BufferPool.Buffer buffer = share.acquireReserved(share.reserveBytes());
        Refusal failed = null;
        try {
            MemorySegment piece = buffer.segment();
            for (long at = 0; at < r.length(); at += piece.byteSize()) {
                MemorySegment part = piece.asSlice(0, Math.min(piece.byteSize(), r.length() - at));
                channel.startMessage();
                channel.readFully(part.asByteBuffer());
                channel.endMessage();
                if (failed == null) {
                    failed = transferPiece(NBD_CMD_WRITE, r.offset() + at, part, r.fua());
                }
            }
        } finally {
            buffer.release();
        }
        return failed == null ? new Reply(r, 0, null) : new Reply(r, failed.error(), failed.message());
    }

    /** Sending failed: no more replies go out; the reader ends too. */
    private void sendFailed(IOException e) {
        writerFailed = true;
        log.debug("{} on {}: sending a reply failed: {}", channel.peer(), export.name(), e.getMessage());
        channel.close();
    }

    /** Hands a reply to the writer from the reader's thread (counted in {@link #unanswered}). */
    private void queue(Reply reply) {
        unanswered.incrementAndGet();
        replies.add(reply);
    }

    /**
     * Whether the client has sent more while this thread served a request inline, before its reply
     * went out: then it did not wait for the reply (a deeper queue). What came is kept as the start
     * of the next request. A failure to look is left to the next read.
     */
    private boolean inputWaiting() {
        try {
            return channel.inputWaiting(requestHeader);
        } catch (IOException e) {
            return false;
        }
    }

    /**
     * A reply made on the reader's thread (a read the page cache held): sent from here when the
     * writer has nothing queued and is not sending, which saves waking it; else queued for it.
     * Sent at once, it leaves nothing unanswered, so the next request would look alone even when
     * the client did not wait for this reply: the next one inherits this request's standing (a
     * deep client's stays not alone), and after one that came alone a look at the socket tells a
     * client that sent more meanwhile, as the look ahead of inline requests does. Like that look,
     * it sees only what is in the socket: a request sent just after it may still count as alone.
     */
    private void sendOrQueue(Reply reply, boolean alone) {
        if (!replies.isEmpty() || !sending.tryLock()) {
            queue(reply);
            return;
        }
        try {
            sendAndRelease(reply, inlineHead);
        } finally {
            sending.unlock();
        }
        if (!alone) {
            queuedBehind = true;
        } else if (inputWaiting()) {
            sentMoreMeanwhile();
        }
    }

    /**
     * A look found the client's next request already in the socket before this thread's reply
     * went out: it did not wait for the reply (a deeper queue), so that request is not alone and
     * from now on a long run of requests that came alone must pass before one runs here again.
     */
    private void sentMoreMeanwhile() {
        queuedBehind = true;
        aloneNeeded = LOOK_AHEAD_EVERY;
    }

    /** Sends a reply from the reader's thread (see {@link #readRequests}). */
    private void sendNow(Reply reply) {
        sending.lock();
        try {
            sendAndRelease(reply, inlineHead);
        } finally {
            sending.unlock();
        }
    }

    /**
     * The writer: sends replies as they come, those already waiting gathered into one socket write
     * (up to {@link #BATCH_REPLIES}, or {@link #BATCH_DATA_BYTES} of data); after a failed write it
     * only releases what they hold.
     */
    private void writeReplies() {
        ByteBuffer head = ByteBuffer.allocateDirect(NbdCodec.REPLY_HEAD_BYTES);
        ByteBuffer[] heads = new ByteBuffer[BATCH_REPLIES];
        ByteBuffer all = ByteBuffer.allocateDirect(BATCH_REPLIES * BATCHED_HEAD_BYTES);
        for (int i = 0; i < BATCH_REPLIES; i++) {
            heads[i] = all.slice(i * BATCHED_HEAD_BYTES, BATCHED_HEAD_BYTES);
        }
        List<Reply> batch = new ArrayList<>(BATCH_REPLIES);
        while (true) {
            Reply reply;
            try {
                reply = replies.take();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            while (reply != null) {
                if (reply == Reply.END) {
                    return; // the reader queues it after every other reply is back
                }
                long dataBytes = 0;
                while (reply != null && reply != Reply.END && batchable(reply)) {
                    batch.add(reply);
                    dataBytes += reply.dataBytes();
                    reply = batch.size() < BATCH_REPLIES && dataBytes < BATCH_DATA_BYTES ? replies.poll() : null;
                }
                sending.lock();
                try {
                    if (!batch.isEmpty()) {
                        sendBatch(batch, heads);
                    }
                    if (reply != null && reply != Reply.END) {
                        unanswered.decrementAndGet();
                        sendAndRelease(reply, head);
                        reply = null;
                    }
                } finally {
                    sending.unlock();
                }
                if (reply == null) {
                    reply = replies.poll();
                }
            }
        }
    }

    /** Replies gathered into one write: at most this many, each head at most {@link #BATCHED_HEAD_BYTES}. */
    static final int BATCH_REPLIES = 16;

    /** A batch is not extended once its data reaches this. */
    static final long BATCH_DATA_BYTES = 1 << 20;

    /** The largest head of a batched reply: an OFFSET_DATA chunk's. */
    private static final int BATCHED_HEAD_BYTES = STRUCTURED_REPLY_HEADER_BYTES + 8;

    /**
     * Whether {@code reply} is one header and its data, if any: a simple reply, or a structured
     * read's success in one chunk. Errors with messages and reads in pieces go out on their own.
     */
    private boolean batchable(Reply reply) {
        NbdRequest r = reply.request();
        return NbdCodec.simpleReply(structured, r, reply.error())
                || reply.error() == 0 && r.type() == NBD_CMD_READ && !inPieces(r);
    }

    /**
     * Sends the {@link #batchable} replies of {@code batch} in one gathering write (unless sending
     * already failed), then gives back what they hold and empties it. Under {@link #sending}.
     */
    private void sendBatch(List<Reply> batch, ByteBuffer[] heads) {
        unanswered.addAndGet(-batch.size());
        try {
            if (!writerFailed) {
                ByteBuffer[] gather = new ByteBuffer[2 * batch.size()];
                int n = 0;
                for (int i = 0; i < batch.size(); i++) {
                    Reply reply = batch.get(i);
                    NbdRequest r = reply.request();
                    gather[n++] = NbdCodec.simpleReply(structured, r, reply.error())
                            ? NbdCodec.putSimpleReply(heads[i], reply.error(), r.cookie())
                            : NbdCodec.putOffsetData(heads[i], true, r.cookie(), r.offset(), r.length());
                    if (reply.data() != null) {
                        gather[n++] = reply.data().segment().asByteBuffer();
                    }
                }
                channel.writeFully(n == gather.length ? gather : Arrays.copyOf(gather, n));
            }
        } catch (IOException e) {
            sendFailed(e);
        } catch (RuntimeException e) {
            // A bug; the writer must go on releasing what replies hold, or the reader waits forever.
            unexpectedErrors.incrementAndGet();
            writerFailed = true;
            log.error("{} on {}: sending replies failed", channel.peer(), export.name(), e);
            channel.close();
        } finally {
            for (Reply reply : batch) {
                if (reply.data() != null) {
                    reply.data().release();
                }
                inFlight.release();
            }
            batch.clear();
        }
    }

    /**
     * Sends {@code reply} unless sending already failed, then gives back what it holds (null: no
     * reply left to send, only the request's slot to give back). Under {@link #sending}.
     */
    private void sendAndRelease(Reply reply, ByteBuffer head) {
        if (reply == null) {
            inFlight.release(); // the reply went out in pieces
            return;
        }
        try {
            if (!writerFailed) {
                send(reply, head);
            }
        } catch (IOException e) {
            sendFailed(e);
        } catch (RuntimeException e) {
            // A bug; the writer must go on releasing what replies hold, or the reader waits forever.
            unexpectedErrors.incrementAndGet();
            writerFailed = true;
            log.error("{} on {}: sending a reply failed", channel.peer(), export.name(), e);
            channel.close();
        } finally {
            if (reply.data() != null) {
                reply.data().release();
            }
            inFlight.release();
        }
    }

    /**
     * Sends {@code data}, the part of read {@code r} at {@code fromBytes}, as OFFSET_DATA chunks:
     * one per {@link #READ_PIECE_BYTES} when the read goes in pieces ({@link #inPieces}), else one;
     * the last with DONE if {@code done}. Under {@link #sending}.
     */
    private void sendData(NbdRequest r, long fromBytes, MemorySegment data, boolean done, ByteBuffer head)
            throws IOException {
        long chunk = inPieces(r) ? READ_PIECE_BYTES : data.byteSize();
        for (long at = 0; at < data.byteSize(); at += chunk) {
            long length = Math.min(chunk, data.byteSize() - at);
            boolean last = at + length == data.byteSize();
            NbdCodec.putOffsetData(head, done && last, r.cookie(), r.offset() + fromBytes + at, length);
            channel.writeFully(head, data.asSlice(at, length).asByteBuffer());
        }
    }

    private void send(Reply reply, ByteBuffer head) throws IOException {
        NbdRequest r = reply.request();
        if (reply.blockStatus() != null) {
            channel.writeFully(reply.blockStatus());
            return;
        }
        if (NbdCodec.simpleReply(structured, r, reply.error())) {
            NbdCodec.putSimpleReply(head, reply.error(), r.cookie());
            if (reply.data() != null) {
                channel.writeFully(head, reply.data().segment().asByteBuffer());
            } else {
                channel.writeFully(head);
            }
            return;
        }
        if (reply.data() != null) {
            // A failed read sends the pieces before the failed one, then the error.
            sendData(r, 0, reply.data().segment().asSlice(0, reply.dataBytes()), reply.error() == 0, head);
            if (reply.error() == 0) {
                return;
            }
        }
        channel.writeFully(NbdCodec.putError(head, r.cookie(), reply.error(), reply.message()));
    }
}
