"""Data: the column names of common exports, and their translations, for each role a column can
play. Written as people write them; ``names.normalise`` compares them case-, accent- and
punctuation-insensitively, so "E-Mail", "e_mail" and "EMAIL" are one entry.

A role's groups are in order of preference: for a phone, a mobile number before a landline
(the API notifies by SMS). Each group names the language it is in: a match in a language other
than English is evidence for the region of the phone numbers (``regions.py``).

Sources: Shopify (2023 and legacy), Salesforce (labels and API names), HubSpot, Stripe,
QuickBooks Desktop, WooCommerce, Magento, Mailchimp, and the headers of home-grown CRMs in
English, German, Spanish, French, Italian and Portuguese.
"""

from __future__ import annotations

from typing import Final

#: (language, names): "en" also stands for names every language uses ("Email", "ID").
Group = tuple[str, tuple[str, ...]]

#: An id is only ever recognised by its exact name: a column is never taken for the upsert key
#: because its name merely contains "id" ("Card ID", "Business VAT ID").
EXTERNAL_ID: Final[tuple[Group, ...]] = (
    ("en", ("Customer ID", "Customer No.", "Customer Number", "Customer Code", "Customer Ref",
            "Customer Reference", "Cust ID", "Cust No", "Client ID", "Client No", "Client Number",
            "Client Code", "Contact ID", "Record ID", "External ID", "ListID", "User ID",
            "Member ID", "CRM ID", "Legacy ID", "ID")),
    ("de", ("Kundennummer", "Kundennr", "Kunden-Nr.", "Kd.-Nr.", "KdNr", "Kunden-ID",
            "Kundenkennung")),
    ("es", ("ID Cliente", "Cliente ID", "Código Cliente", "Código de Cliente",
            "Número de Cliente", "Número Cliente", "Nro Cliente", "Nº Cliente", "Num Cliente",
            "Cod Cliente")),
    ("fr", ("ID Client", "Code Client", "Numéro Client", "Numéro de Client", "N° Client",
            "Num Client", "Réf Client", "Référence Client", "Identifiant Client")),
    ("it", ("Codice Cliente", "Numero Cliente", "Codice")),
    ("pt", ("Código do Cliente", "ID do Cliente", "Número do Cliente")),
)  # fmt: skip

FIRST_NAME: Final[tuple[Group, ...]] = (
    ("en", ("First Name", "FirstName", "First", "Given Name", "Forename", "FName",
            "Billing First Name", "Contact First Name")),
    ("de", ("Vorname",)),
    ("es", ("Nombre", "Nombres", "Primer Nombre")),
    ("fr", ("Prénom",)),
    ("it", ("Nome",)),
    ("pt", ("Primeiro Nome", "Nome Próprio")),
)  # fmt: skip

LAST_NAME: Final[tuple[Group, ...]] = (
    ("en", ("Last Name", "LastName", "Last", "Surname", "Family Name", "LName",
            "Billing Last Name", "Contact Last Name")),
    ("de", ("Nachname", "Familienname", "Zuname")),
    ("es", ("Apellido", "Apellidos", "Primer Apellido")),
    ("fr", ("Nom", "Nom de Famille")),
    ("it", ("Cognome",)),
    ("pt", ("Sobrenome", "Apelido", "Último Nome")),
)  # fmt: skip

#: One column holding the whole name, split with ``part = "first"`` / ``"last"``.
FULL_NAME: Final[tuple[Group, ...]] = (
    ("en", ("Name", "Full Name", "Customer Name", "Contact Name", "Client Name", "Display Name",
            "Billing Name")),
    ("de", ("Vollständiger Name", "Voller Name")),
    ("es", ("Nombre Completo", "Nombre y Apellidos")),
    ("fr", ("Nom Complet", "Nom et Prénom")),
    ("it", ("Nome Completo", "Nominativo", "Nome e Cognome")),
    ("pt", ("Nome Completo",)),
)  # fmt: skip

#: First-name columns that hold the whole name in some exports (Portuguese "Nome"): taken as a
#: full name when no last-name column exists and most of their values have two words or more.
FIRST_OR_FULL: Final = ("Nome", "Nombre")

EMAIL: Final[tuple[Group, ...]] = (
    ("en", ("Email", "Email Address", "Mail", "Primary Email", "Billing Email", "Contact Email",
            "Emailaddress")),
    ("de", ("E-Mail-Adresse", "Mailadresse", "Emailadresse")),
    ("es", ("Correo", "Correo Electrónico", "Email Cliente")),
    ("fr", ("Courriel", "Adresse Email", "Adresse E-mail", "Adresse Courriel", "Adresse Mail",
            "Mél")),
    ("it", ("Posta Elettronica", "Indirizzo Email", "Email Principale")),
    ("pt", ("Endereço de Email", "Endereço de E-mail", "Correio Eletrônico")),
)  # fmt: skip

PHONE: Final[tuple[Group, ...]] = (
    ("en", ("Mobile", "Mobile Phone", "MobilePhone", "Mobile Number", "Mobile Phone Number",
            "Cell", "Cell Phone", "Cellphone", "Cell Number")),
    ("de", ("Mobil", "Handy", "Mobilnummer", "Handynummer", "Mobiltelefon", "Mobilfunknummer")),
    ("es", ("Móvil", "Teléfono Móvil", "Teléfono Celular", "Número de Móvil")),
    ("es", ("Celular",)),
    ("fr", ("Portable", "Téléphone Portable", "Tél Portable", "Numéro de Portable")),
    ("it", ("Cellulare", "Numero di Cellulare", "Telefono Cellulare")),
    ("pt", ("Telemóvel", "Telefone Celular", "Telefone Móvel")),
    ("en", ("Phone", "Phone Number", "Telephone", "Telephone Number", "Tel", "Billing Phone",
            "Primary Phone", "Contact Phone", "Home Phone", "Work Phone")),
    ("de", ("Telefon", "Telefonnummer", "Tel.-Nr.", "Rufnummer", "Telefon privat")),
    ("es", ("Teléfono", "Número de Teléfono")),
    ("fr", ("Téléphone", "Numéro de Téléphone")),
    ("it", ("Numero di Telefono",)),
    ("pt", ("Telefone", "Número de Telefone")),
)  # fmt: skip

ACTIVE: Final[tuple[Group, ...]] = (
    ("en", ("Active", "Is Active", "IsActive", "Status", "Account Status", "Customer Status",
            "Enabled")),
    ("de", ("Aktiv", "Kundenstatus")),
    ("es", ("Activo", "Activa", "Estado", "Estatus")),
    ("fr", ("Actif", "Statut")),
    ("it", ("Attivo", "Stato")),
    ("pt", ("Ativo", "Situação")),
)  # fmt: skip

EMAIL_OPT_IN: Final[tuple[Group, ...]] = (
    ("en", ("Email Opt-In", "Email Optin", "Accepts Email Marketing", "Accepts Marketing",
            "Email Marketing", "Marketing Emails", "Newsletter", "Newsletter Opt-In",
            "Subscribed", "Email Subscribed", "Email Consent", "Email Marketing Consent",
            "Opt-In Email")),
    ("de", ("Newsletter abonniert", "E-Mail-Werbung", "Einwilligung E-Mail")),
    ("es", ("Suscrito", "Suscrito al Boletín", "Boletín", "Acepta Publicidad",
            "Acepta Correos")),
    ("fr", ("Abonné Newsletter", "Inscrit Newsletter", "Accepte Emailing", "Abonné")),
    ("it", ("Iscritto Newsletter", "Consenso Email", "Consenso Marketing")),
    ("pt", ("Aceita Email", "Aceita Newsletter", "Assinante Newsletter")),
)  # fmt: skip

EMAIL_OPT_OUT: Final[tuple[Group, ...]] = (
    ("en", ("HasOptedOutOfEmail", "Has Opted Out of Email", "Email Opt-Out", "Email Optout",
            "Opted Out of Email", "Unsubscribed", "Email Unsubscribed",
            "Unsubscribed from all email", "Do Not Email", "No Email")),
    ("de", ("Newsletter abgemeldet", "Abgemeldet", "Keine E-Mails", "Werbesperre E-Mail")),
    ("es", ("Desuscrito", "Dado de Baja", "Baja Newsletter", "No Enviar Correos")),
    ("fr", ("Désabonné", "Désinscrit", "Désabonné Newsletter")),
    ("it", ("Disiscritto",)),
    ("pt", ("Descadastrado", "Não Enviar Email")),
)  # fmt: skip

PHONE_OPT_IN: Final[tuple[Group, ...]] = (
    ("en", ("SMS Opt-In", "SMS Optin", "Accepts SMS Marketing", "SMS Marketing", "Text Opt-In",
            "Phone Opt-In", "SMS Consent", "SMS Subscribed")),
    ("de", ("SMS erlaubt", "Telefonwerbung", "Einwilligung SMS")),
    ("es", ("Acepta SMS",)),
    ("fr", ("Accepte SMS",)),
    ("it", ("Consenso SMS",)),
    ("pt", ("Aceita SMS",)),
)  # fmt: skip

PHONE_OPT_OUT: Final[tuple[Group, ...]] = (
    ("en", ("DoNotCall", "Do Not Call", "Do Not Text", "SMS Opt-Out", "Phone Opt-Out",
            "Text Opt-Out", "Opted Out of SMS", "No Calls")),
    ("de", ("Nicht anrufen", "Keine Anrufe", "Telefonsperre")),
    ("es", ("No Llamar", "No Contactar por Teléfono")),
    ("fr", ("Ne pas appeler", "Ne pas contacter par téléphone")),
    ("it", ("Non Chiamare",)),
    ("pt", ("Não Ligar",)),
)  # fmt: skip

#: Country columns: not sent, but their values say which region the phone numbers are in.
COUNTRY: Final[tuple[Group, ...]] = (
    ("en", ("Country", "Country Code", "Country/Region", "Billing Country", "Mailing Country",
            "MailingCountry", "Shipping Country", "Address Country", "Bill Address Country",
            "Default Address Country Code", "CC")),
    ("de", ("Land", "Ländercode")),
    ("es", ("País", "Código País")),
    ("fr", ("Pays", "Code Pays")),
    ("it", ("Paese", "Nazione")),
)  # fmt: skip

#: Parts of names of columns that hold secrets: never mapped, always in ``drop_columns``.
SECRET_PARTS: Final = (
    "password", "passwort", "kennwort", "contrasena", "motdepasse", "senha", "passwd", "pwd",
    "token", "secret",
)  # fmt: skip

#: Regions a language's names point to, likeliest first.
LANGUAGE_REGIONS: Final = {
    "de": ("DE", "AT", "CH"),
    "es": ("ES", "MX", "AR", "CO", "CL", "PE"),
    "fr": ("FR", "BE", "CH", "CA"),
    "it": ("IT", "CH"),
    "pt": ("BR", "PT"),
}

#: Regions tried, in this order, when nothing in the file points to one.
COMMON_REGIONS: Final = (
    "US", "GB", "CA", "AU", "DE", "FR", "ES", "IT", "NL", "BR", "MX", "PT", "AT", "CH", "BE",
    "IE", "IN",
)  # fmt: skip

#: Country names as exports write them (English and the country's own), by ISO region.
COUNTRY_NAMES: Final = {
    "US": ("United States", "United States of America", "USA", "U.S.", "U.S.A.", "Estados Unidos",
           "États-Unis", "Vereinigte Staaten", "Stati Uniti"),
    "GB": ("United Kingdom", "UK", "Great Britain", "England", "Scotland", "Wales", "GBR",
           "Reino Unido", "Royaume-Uni", "Vereinigtes Königreich", "Regno Unito"),
    "CA": ("Canada", "CAN", "Kanada", "Canadá"),
    "AU": ("Australia", "AUS", "Australien", "Australie"),
    "IE": ("Ireland", "IRL", "Irland", "Irlande", "Irlanda"),
    "NZ": ("New Zealand", "NZL"),
    "DE": ("Germany", "Deutschland", "DEU", "Alemania", "Allemagne", "Germania", "Alemanha"),
    "AT": ("Austria", "Österreich", "AUT", "Autriche"),
    "CH": ("Switzerland", "Schweiz", "Suisse", "Svizzera", "Suiza", "CHE"),
    "ES": ("Spain", "España", "ESP", "Spanien", "Espagne", "Spagna", "Espanha"),
    "MX": ("Mexico", "México", "MEX", "Mexiko", "Mexique", "Messico"),
    "AR": ("Argentina", "ARG", "Argentinien", "Argentine"),
    "CO": ("Colombia", "COL", "Kolumbien", "Colombie", "Colômbia"),
    "CL": ("Chile", "CHL", "Chili"),
    "PE": ("Peru", "Perú", "PER", "Pérou"),
    "FR": ("France", "FRA", "Frankreich", "Francia", "França"),
    "BE": ("Belgium", "Belgique", "België", "Belgien", "BEL", "Bélgica", "Belgio"),
    "IT": ("Italy", "Italia", "ITA", "Italien", "Italie", "Itália"),
    "PT": ("Portugal", "PRT"),
    "BR": ("Brazil", "Brasil", "BRA", "Brasilien", "Brésil", "Brasile"),
    "NL": ("Netherlands", "The Netherlands", "Holland", "Nederland", "NLD", "Niederlande",
           "Países Bajos", "Pays-Bas", "Paesi Bassi"),
    "IN": ("India", "IND", "Indien", "Inde"),
}  # fmt: skip
