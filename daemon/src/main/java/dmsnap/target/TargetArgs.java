package dmsnap.target;

import dmsnap.table.TableLoadException;
import java.util.List;

/** A cursor over a target's arguments that fails with the constructor's own sentences. */
public final class TargetArgs {
    private final String target;
    private final List<String> args;
    private int next;

    public TargetArgs(String target, List<String> args) {
        this.target = target;
        this.args = List.copyOf(args);
    }

    public int size() {
        return args.size();
    }

    public int remaining() {
        return args.size() - next;
    }

    public List<String> all() {
        return args;
    }

    /** The next word. */
    public String next() {
        if (next >= args.size()) {
            throw new IllegalStateException("no argument left");
        }
        return args.get(next++);
    }

    /**
     * The next word as an unsigned decimal (kstrtoull), or {@code message} as the error; also
     * past 2^63 - 1, which no sector or count reaches.
     */
    public long nextUnsigned(String message) throws TableLoadException {
        String word = next();
        String digits = word.startsWith("+") ? word.substring(1) : word;
        if (digits.isEmpty() || digits.length() > 19 || !digits.chars().allMatch(c -> c >= '0' && c <= '9')) {
            throw fail(message);
        }
        try {
            return Long.parseLong(digits);
        } catch (NumberFormatException e) {
            throw fail(message);
        }
    }

    public TableLoadException fail(String message) {
        return new TableLoadException(target, message);
    }

    public TableLoadException fail(String message, String errno) {
        return new TableLoadException(target, message, errno);
    }
}
