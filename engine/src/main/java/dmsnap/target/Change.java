package dmsnap.target;

/**
 * A run of sectors that changed, or did not, since a baseline snapshot was taken, as block
 * status reports it ({@code dmsnap:changed:S}, {@code qemu:dirty-bitmap:S}). "Changed" is a
 * safe superset: every sector that differs from the baseline is in a changed run.
 */
public record Change(long sectors, boolean changed) {
    public Change {
        if (sectors <= 0) {
            throw new IllegalArgumentException("a change run of " + sectors + " sectors");
        }
    }
}
