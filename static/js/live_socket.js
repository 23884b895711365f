// A websocket that reconnects with a growing pause after a drop (the server's first
// frame on every connection carries the numbers as they are, so a reconnect catches
// up). Used by the journey builder and the analytics pages.
export function connectLive(path, { onFrame, onState = () => {} }) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  function connect(delay) {
    const socket = new WebSocket(`${scheme}://${window.location.host}${path}`);
    let opened = false;
    socket.addEventListener("open", () => {
      opened = true;
      onState("live");
    });
    socket.addEventListener("message", (event) => onFrame(JSON.parse(event.data)));
    socket.addEventListener("close", (event) => {
      if (event.code === 4403) {
        onState("refused"); // not allowed: do not knock again
        return;
      }
      onState("reconnecting");
      setTimeout(() => connect(opened ? 1000 : Math.min(delay * 2, 15000)), opened ? 1000 : delay);
    });
  }
  connect(1000);
}
