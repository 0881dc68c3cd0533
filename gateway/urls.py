from django.urls import path

from gateway import views

urlpatterns = [
    path("", views.chat, name="gateway-chat"),
    path("<int:conversation_id>/", views.chat, name="gateway-conversation"),
    path("getting-started/", views.getting_started, name="gateway-getting-started"),
    path("manage/", views.conversations_manage, name="gateway-conversations-manage"),
    path("manage/<int:conversation_id>/delete/", views.conversation_delete_as_admin,
         name="gateway-conversation-delete-as-admin"),
    path("conversations/", views.conversation_create, name="gateway-conversation-create"),
    path("<int:conversation_id>/messages/", views.message_add, name="gateway-message-add"),
    path("<int:conversation_id>/delete/", views.conversation_delete, name="gateway-conversation-delete"),
]
