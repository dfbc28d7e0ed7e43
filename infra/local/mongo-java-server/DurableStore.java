import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.bson.Document;
import io.netty.channel.Channel;
import java.util.List;

/**
 * mongo-java-server on an H2 MVStore file, bound to 127.0.0.1.
 *
 * <p>Usage: java DurableStore PORT FILE. H2 writes its changes to the file about once a
 * second on its own; this backend commits after every command that changed something, so
 * an acknowledged write survives the process being killed. It announces MongoDB 5.0 with
 * that version's wire protocol (13): the server's own 5.0 says 8, which pymongo refuses.
 */
public final class DurableStore extends H2Backend {
    private static final MongoVersion MONGO_5_0 = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(5, 0, 0);
        }

        @Override
        public int getWireVersion() {
            return 13;
        }
    };

    private DurableStore(String file) {
        super(file);
        version(MONGO_5_0);
    }

    @Override
    public Document handleCommand(Channel channel, String database, String command, Document query) {
        Document answer = super.handleCommand(channel, database, command, query);
        synchronized (this) {
            if (getMvStore().hasUnsavedChanges()) {
                commit();
            }
        }
        return answer;
    }

    public static void main(String[] args) {
        MongoServer server = new MongoServer(new DurableStore(args[1]));
        server.bind("127.0.0.1", Integer.parseInt(args[0]));
        Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow));
    }
}
