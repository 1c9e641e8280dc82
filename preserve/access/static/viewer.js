// The page viewer: OpenSeadragon over the item's level-0 IIIF tiles, one page at a time.
// Its sources come from the page's own data attributes; nothing is loaded from another host.
(function () {
  var element = document.getElementById("viewer");
  if (!element || typeof OpenSeadragon === "undefined") { return; }
  var sources = JSON.parse(element.getAttribute("data-sources"));
  var viewer = OpenSeadragon({
    id: "viewer",
    prefixUrl: element.getAttribute("data-prefix"),
    tileSources: sources,
    sequenceMode: sources.length > 1,
    showNavigator: true,
    crossOriginPolicy: false
  });
  viewer.addHandler("tile-loaded", function () { element.setAttribute("data-loaded", "yes"); });
  viewer.addHandler("open-failed", function (e) { element.setAttribute("data-failed", e.message || "open failed"); });
})();
