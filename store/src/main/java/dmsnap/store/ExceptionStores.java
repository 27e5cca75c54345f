package dmsnap.store;

import dmsnap.store.device.Device;
import dmsnap.store.persistent.PersistentExceptionStore;

/**
 * Builds an exception store from a snapshot table's {@code <store> <chunk_size>} words, with the
 * kernel's checks ({@code dm_exception_store_create}, {@code set_chunk_size}). Every failure is an
 * {@link IllegalArgumentException} carrying the kernel's specific reason; the snapshot target
 * reports all of them as "Couldn't create exception store", as the kernel does.
 */
public final class ExceptionStores {
    private ExceptionStores() {}

    /** The parsed {@code <store>} word: P or N, and for P whether "O" (overflow) was given. */
    public record StoreType(boolean persistent, boolean overflow) {
        public String letter() {
            return persistent ? "P" : "N";
        }
    }

    /**
     * Parses {@code <store>}: the first character upper-cased must be P or N; for P the options
     * (the rest) must start with O or o; for N they are ignored.
     */
    public static StoreType parseType(String word) {
        if (word.isEmpty()) {
            throw new IllegalArgumentException("Exception store type is not P or N");
        }
        char type = Character.toUpperCase(word.charAt(0));
        String options = word.substring(1);
        return switch (type) {
            case 'P' -> {
                if (!options.isEmpty() && Character.toUpperCase(options.charAt(0)) != 'O') {
                    throw new IllegalArgumentException("Unsupported persistent store option: " + options);
                }
                yield new StoreType(true, !options.isEmpty());
            }
            case 'N' -> new StoreType(false, false);
            default -> throw new IllegalArgumentException("Exception store type is not P or N");
        };
    }

    /** Parses {@code <chunk_size>} as the kernel's kstrtouint: an unsigned 32-bit decimal. */
    public static long parseChunkSectors(String word) {
        String digits = word.startsWith("+") ? word.substring(1) : word;
        if (digits.isEmpty() || digits.length() > 10 || !digits.chars().allMatch(c -> c >= '0' && c <= '9')) {
            throw new IllegalArgumentException("Invalid chunk size");
        }
        long value = Long.parseLong(digits);
        if (value > 0xffffffffL) {
            throw new IllegalArgumentException("Invalid chunk size");
        }
        return value;
    }

    /**
     * Creates the store. A chunk size of 0 is accepted here (a persistent store then takes the
     * header's or the default; a transient one fails later with "Chunk size not set" unless it
     * is a handover destination). Nothing is read from the COW.
     */
    public static ExceptionStore create(String typeWord, String chunkWord, Device cow, Device origin) {
        StoreType type = parseType(typeWord);
        long sectors = parseChunkSectors(chunkWord);
        if (sectors != 0) {
            String reason = ChunkSize.invalidReason(sectors, cow.logicalBlockBytes(), origin.logicalBlockBytes());
            if (reason != null) {
                throw new IllegalArgumentException(reason);
            }
        }
        ChunkSize chunk = new ChunkSize(sectors);
        if (type.persistent()) {
            return new PersistentExceptionStore(cow, chunk, type.overflow(), origin.logicalBlockBytes());
        }
        return new TransientExceptionStore(cow, chunk);
    }
}
