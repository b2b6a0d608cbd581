package dev.tokengate.hosts;

import com.dylibso.chicory.wasm.WasmModule;
import com.fasterxml.jackson.databind.JsonNode;
import io.roastedroot.proxywasm.LogHandler;
import io.roastedroot.proxywasm.LogLevel;
import io.roastedroot.proxywasm.MetricType;
import io.roastedroot.proxywasm.MetricsHandler;
import io.roastedroot.proxywasm.PluginFactory;
import io.roastedroot.proxywasm.SimpleSharedDataHandler;
import io.roastedroot.proxywasm.SimpleSharedQueueHandler;
import io.roastedroot.proxywasm.StartException;
import io.roastedroot.proxywasm.WasmException;
import io.roastedroot.proxywasm.internal.Action;
import io.roastedroot.proxywasm.internal.ArrayProxyMap;
import io.roastedroot.proxywasm.internal.HttpCallResponseHandler;
import io.roastedroot.proxywasm.internal.HttpRequestAdaptor;
import io.roastedroot.proxywasm.internal.Plugin;
import io.roastedroot.proxywasm.internal.PluginHttpContext;
import io.roastedroot.proxywasm.internal.ProxyMap;
import io.roastedroot.proxywasm.internal.ProxyWasm;
import io.roastedroot.proxywasm.internal.SendResponse;
import io.roastedroot.proxywasm.internal.ServerAdaptor;
import io.roastedroot.proxywasm.internal.WasmResult;

import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The embedder side of proxy-wasm-java-host for one case: the plugin (one VM), its log,
 * metrics, shared data and queues, and the loop a server would run around it: queue wake-ups
 * delivered to the root, HTTP calls answered as the case's IdP says.
 *
 * <p>The host's plugin layer never delivers {@code proxy_on_queue_ready} itself (it has the
 * ABI call, {@link ProxyWasm#sendOnQueueReady}, but nothing calls it), so this embedder does,
 * after each callback, as Envoy does from its event loop. It also adds the {@code :status}
 * pseudo-header to call responses, which the host leaves to the server adaptor.
 */
final class ChicoryWorld implements ServerAdaptor {

    final List<String> log = new ArrayList<>();
    final Metrics metrics = new Metrics();
    final SimpleSharedDataHandler shared = new SimpleSharedDataHandler();
    final Map<String, JsonNode> idp = new HashMap<>();
    final Map<String, Long> idpCalls = new TreeMap<>();
    private final Deque<PendingCall> pending = new ArrayDeque<>();
    private final Queues queues = new Queues();
    private Plugin plugin;
    private ProxyWasm wasm;

    /** What a server does with a request: the headers it forwards, or the local reply. */
    static final class Outcome {
        final SendResponse reply;
        final ArrayProxyMap upstream;

        Outcome(SendResponse reply, ArrayProxyMap upstream) {
            this.reply = reply;
            this.upstream = upstream;
        }
    }

    private static final class PendingCall {
        final String path;
        final HttpCallResponseHandler handler;
        boolean cancelled;

        PendingCall(String path, HttpCallResponseHandler handler) {
            this.path = path;
            this.handler = handler;
        }
    }

    /** Counters and gauges by name, as Envoy's stats would show them. */
    static final class Metrics implements MetricsHandler {
        private final List<String> names = new ArrayList<>();
        private final List<MetricType> types = new ArrayList<>();
        private final List<Long> values = new ArrayList<>();

        @Override
        public synchronized int defineMetric(MetricType type, String name) {
            int existing = names.indexOf(name);
            if (existing >= 0) {
                return existing + 1;
            }
            names.add(name);
            types.add(type);
            values.add(0L);
            return names.size();
        }

        @Override
        public synchronized long getMetric(int id) throws WasmException {
            if (id < 1 || id > names.size()) {
                throw new WasmException(WasmResult.NOT_FOUND);
            }
            return values.get(id - 1);
        }

        @Override
        public synchronized WasmResult incrementMetric(int id, long delta) {
            if (id < 1 || id > names.size()) {
                return WasmResult.NOT_FOUND;
            }
            values.set(id - 1, values.get(id - 1) + delta);
            return WasmResult.OK;
        }

        @Override
        public synchronized WasmResult recordMetric(int id, long value) {
            if (id < 1 || id > names.size()) {
                return WasmResult.NOT_FOUND;
            }
            if (types.get(id - 1) != MetricType.HISTOGRAM) {
                values.set(id - 1, value);
            }
            return WasmResult.OK;
        }

        @Override
        public synchronized WasmResult removeMetric(int id) {
            return WasmResult.OK;
        }

        synchronized Map<String, Long> snapshot() {
            Map<String, Long> out = new TreeMap<>();
            for (int i = 0; i < names.size(); i++) {
                if (types.get(i) != MetricType.HISTOGRAM) {
                    out.put(names.get(i), values.get(i));
                }
            }
            return out;
        }
    }

    /** The host's in-memory queues, noting each item for delivery. */
    static final class Queues extends SimpleSharedQueueHandler {
        final List<Integer> enqueued = new ArrayList<>();

        @Override
        public synchronized WasmResult enqueueSharedQueue(int queueId, byte[] value) {
            WasmResult result = super.enqueueSharedQueue(queueId, value);
            if (result == WasmResult.OK) {
                enqueued.add(queueId);
            }
            return result;
        }
    }

    private final LogHandler logger =
            new LogHandler() {
                @Override
                public void log(LogLevel level, String message) {
                    synchronized (log) {
                        log.add("[" + level + "] " + message);
                    }
                }

                @Override
                public LogLevel getLogLevel() {
                    return LogLevel.INFO;
                }
            };

    String logText() {
        synchronized (log) {
            return String.join("\n", log);
        }
    }

    /** Starts the plugin; a refused configuration throws (the host's {@link StartException}). */
    void start(WasmModule module, String configuration) throws Exception {
        PluginFactory factory =
                PluginFactory.builder(module)
                        .withName("tokengate")
                        .withPluginConfig(configuration)
                        .withLogger(logger)
                        .withMetricsHandler(metrics)
                        .withSharedDataHandler(shared)
                        .withSharedQueueHandler(queues)
                        .withUpstreams(Map.of("idp", URI.create("http://idp.test:80")))
                        .withStrictUpstreams(true)
                        .withShared(true)
                        .build();
        plugin = (Plugin) factory.create();
        plugin.setServerAdaptor(this);
    }

    void close() {
        if (plugin != null) {
            plugin.close();
        }
    }

    // ---------------------------------------------------------------------------------------
    // ServerAdaptor: what the host asks of the server.

    @Override
    public Runnable scheduleTick(long delay, Runnable task) {
        throw new UnsupportedOperationException("ticks are not part of this tier");
    }

    @Override
    public HttpRequestAdaptor httpRequestAdaptor(Object context) {
        throw new UnsupportedOperationException("requests are created by the harness");
    }

    @Override
    public Runnable scheduleHttpCall(
            String method,
            String host,
            int port,
            URI uri,
            ProxyMap headers,
            byte[] body,
            ProxyMap trailers,
            int timeout,
            HttpCallResponseHandler handler) {
        PendingCall call = new PendingCall(uri.getRawPath(), handler);
        pending.add(call);
        return () -> call.cancelled = true;
    }

    /** Delivers queue wake-ups and answers calls until the plugin waits for nothing. */
    private void settle() {
        for (int round = 0; round < 64; round++) {
            List<Integer> items;
            synchronized (queues) {
                items = new ArrayList<>(queues.enqueued);
                queues.enqueued.clear();
            }
            if (items.isEmpty() && pending.isEmpty()) {
                return;
            }
            for (int queue : items) {
                plugin.lock();
                try {
                    wasm.sendOnQueueReady(queue);
                } finally {
                    plugin.unlock();
                }
            }
            while (!pending.isEmpty()) {
                answer(pending.poll());
            }
        }
        throw new IllegalStateException("the plugin kept asking for more than 64 rounds");
    }

    private void answer(PendingCall call) {
        if (call.cancelled) {
            return;
        }
        JsonNode answer = idp.get(call.path);
        int status;
        String body;
        if (answer == null) {
            idpCalls.merge(call.path, 1L, Long::sum);
            status = 404;
            body = "{\"error\":\"not found\"}";
        } else if (answer.path("down").asBoolean(false)) {
            // What Envoy synthesizes when the connection is refused.
            status = 503;
            body = "upstream connect error";
        } else {
            idpCalls.merge(call.path, 1L, Long::sum);
            status = answer.path("status").asInt(200);
            body = answer.path("body").asText("");
        }
        ArrayProxyMap headers = new ArrayProxyMap();
        headers.add(":status", Integer.toString(status));
        headers.add("content-type", "application/json");
        call.handler.call(status, headers, body.getBytes(StandardCharsets.UTF_8));
    }

    // ---------------------------------------------------------------------------------------
    // Requests.

    /** A request as the server holds it: its header map, which the plugin reads and edits. */
    private static final class Request implements HttpRequestAdaptor {
        final ArrayProxyMap headers;

        Request(ArrayProxyMap headers) {
            this.headers = headers;
        }

        @Override
        public String remoteAddress() {
            return "127.0.0.1";
        }

        @Override
        public int remotePort() {
            return 40000;
        }

        @Override
        public String localAddress() {
            return "127.0.0.1";
        }

        @Override
        public int localPort() {
            return 8080;
        }

        @Override
        public String protocol() {
            return "HTTP/1.1";
        }

        @Override
        public ProxyMap getHttpRequestHeaders() {
            return headers;
        }

        @Override
        public ProxyMap getHttpRequestTrailers() {
            return new ArrayProxyMap();
        }

        @Override
        public ProxyMap getHttpResponseHeaders() {
            return new ArrayProxyMap();
        }

        @Override
        public ProxyMap getHttpResponseTrailers() {
            return new ArrayProxyMap();
        }

        @Override
        public ProxyMap getGrpcReceiveInitialMetaData() {
            return new ArrayProxyMap();
        }

        @Override
        public ProxyMap getGrpcReceiveTrailerMetaData() {
            return new ArrayProxyMap();
        }

        @Override
        public byte[] getProperty(PluginHttpContext request, List<String> path) {
            return null;
        }

        @Override
        public WasmResult setProperty(
                PluginHttpContext request, List<String> path, byte[] value) {
            return WasmResult.NOT_FOUND;
        }
    }

    /** Sends one request through the plugin; fails if it is paused and never resumed. */
    Outcome request(String path, List<String[]> headers) {
        ArrayProxyMap map = new ArrayProxyMap();
        map.add(":method", "GET");
        map.add(":scheme", "http");
        map.add(":authority", "api.test");
        map.add(":path", path);
        for (String[] header : headers) {
            map.add(header[0], header[1]);
        }
        Request request = new Request(map);
        PluginHttpContext context;
        plugin.lock();
        try {
            context = plugin.createHttpContext(request);
            wasm = context.context().getProxyWasm();
            context.context().callOnRequestHeaders(true);
        } finally {
            plugin.unlock();
        }
        settle();
        SendResponse reply = context.getSendResponse();
        Action action = context.getAction();
        plugin.lock();
        try {
            context.context().close();
        } finally {
            plugin.unlock();
        }
        if (reply == null && action != Action.CONTINUE) {
            throw new IllegalStateException(
                    "the request was paused and never resumed nor answered (" + action + ")");
        }
        return new Outcome(reply, map);
    }
}
