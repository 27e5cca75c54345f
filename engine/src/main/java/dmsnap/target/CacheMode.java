package dmsnap.target;

import dmsnap.store.device.Device;
import java.io.IOException;
import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * When a write to a snapshot is acknowledged, named and meant as qemu-nbd's {@code --cache}
 * (DESIGN.md, "When a write is acknowledged"). A property of a loaded table, like its read-only
 * flag: {@code dmsnap create|load --cache MODE}, else the device's current mode, else the
 * daemon's default. Origin writes keep the kernel's order in every mode: the copied-out chunk
 * and its exception are durable before the origin is written.
 */
public enum CacheMode {
    /**
     * The NBD contract with O_DIRECT data: a snapshot write is acknowledged once its data write
     * completed; its exception is committed at the next FLUSH, FUA write, full area, suspend,
     * handover, merge start, remove or daemon stop, or after the commit interval.
     */
    NONE("none"),
    /**
     * As {@link #NONE}, with the COW's data written and read through the page cache, and the
     * origin read through it (its writes stay O_DIRECT, which drops the pages they overwrite).
     */
    WRITEBACK("writeback"),
    /** The kernel's rule (spec 2.8, checklist 30): acknowledged once data and exception are durable. */
    DIRECTSYNC("directsync");

    private final String text;

    CacheMode(String text) {
        this.text = text;
    }

    /** {@code none}, {@code writeback} or {@code directsync}. */
    public String text() {
        return text;
    }

    /** Whether snapshot writes are acknowledged before their exceptions are committed. */
    public boolean defersCommits() {
        return this != DIRECTSYNC;
    }

    /** Whether the COW's data goes through the page cache. */
    public boolean usesPageCache() {
        return this == WRITEBACK;
    }

    /**
     * The view of {@code device} that data goes through in this mode: its page-cache view
     * ({@link Device#buffered()}) in {@link #WRITEBACK}, else the device itself (O_DIRECT).
     *
     * @throws IOException the page-cache view could not be opened
     */
    public Device dataView(Device device) throws IOException {
        return usesPageCache() ? device.buffered() : device;
    }

    /**
     * The mode named {@code text} (any case).
     *
     * @throws IllegalArgumentException with the modes there are
     */
    public static CacheMode parse(String text) {
        for (CacheMode m : values()) {
            if (m.text.equals(text.toLowerCase(Locale.ROOT))) {
                return m;
            }
        }
        throw new IllegalArgumentException("unknown cache mode '" + text + "' (" + names() + ")");
    }

    /** "none, writeback or directsync". */
    public static String names() {
        String all = Arrays.stream(values()).map(CacheMode::text).collect(Collectors.joining(", "));
        int last = all.lastIndexOf(", ");
        return all.substring(0, last) + " or " + all.substring(last + 2);
    }

    @Override
    public String toString() {
        return text;
    }
}
