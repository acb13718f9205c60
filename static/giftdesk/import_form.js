// The import form: choosing an account refills the product list with that account's active
// products (from the admin's JSON view) and points "Download a template" at the account and
// product chosen. Nothing else on the form changes, so a file already chosen stays chosen.
// The server checks the product against the account again on submit.
"use strict";
(function () {
  var box = document.getElementById("import-template");
  var account = document.getElementById("id_account");
  var product = document.getElementById("id_default_product");
  if (!box || !account || !product) { return; }
  var links = document.getElementById("template-links");
  var chooseAccount = document.getElementById("template-choose-account");
  var templateFor = document.getElementById("template-for");
  var loadedFor = account.value;  // the server rendered this account's products

  function setOptions(emptyLabel, products) {
    var kept = product.value;
    var options = [new Option(emptyLabel, "")];
    products.forEach(function (item) { options.push(new Option(item.label, String(item.id))); });
    product.replaceChildren.apply(product, options);
    // A product chosen before the list came back stays chosen when it is still offered.
    product.value = products.some(function (item) { return String(item.id) === kept; }) ? kept : "";
  }

  function chosenText(select) {
    var option = select.options[select.selectedIndex];
    return option ? option.text.split(" — ")[0] : "";
  }

  function updateLinks() {
    var chosen = account.value !== "";
    links.hidden = !chosen;
    chooseAccount.hidden = chosen;
    if (!chosen) { return; }
    var query = "?account=" + encodeURIComponent(account.value);
    if (product.value) { query += "&product=" + encodeURIComponent(product.value); }
    document.getElementById("template-csv").href = box.dataset.templateUrl + query + "&format=csv";
    document.getElementById("template-xlsx").href = box.dataset.templateUrl + query + "&format=xlsx";
    templateFor.textContent = " for " + chosenText(account) + (product.value ? ", " + chosenText(product) : "");
  }

  function loadProducts() {
    var wanted = account.value;
    if (wanted === loadedFor) { updateLinks(); return; }
    if (wanted === "") {
      loadedFor = wanted;
      setOptions("Choose an account first", []);
      updateLinks();
      return;
    }
    product.disabled = true;
    fetch(box.dataset.productsUrl + "?account=" + encodeURIComponent(wanted), {
      headers: {"Accept": "application/json"}, credentials: "same-origin"
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (data) {
      if (account.value !== wanted) { return; }  // another account was chosen meanwhile
      loadedFor = wanted;
      setOptions(data.empty_label, data.products);
    }).catch(function () {
      if (account.value !== wanted) { return; }
      loadedFor = null;
      setOptions("The products could not be loaded: reload the page", []);
    }).finally(function () {
      product.disabled = false;
      updateLinks();
    });
  }

  account.addEventListener("change", loadProducts);
  product.addEventListener("change", updateLinks);
  updateLinks();
})();
